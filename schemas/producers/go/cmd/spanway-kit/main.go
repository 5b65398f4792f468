// Command spanway-kit exercises the kafkaexporter kit: `golden` publishes
// the golden traces of schemas/testdata through it, `example` runs a small
// program instrumented with the OpenTelemetry Go SDK that exports through
// it. Run through schemas/producers/go/run.
package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  spanway-kit golden --brokers HOST:PORT --topic TOPIC --testdata DIR [--compression C] [--timeout-ms MS]
  spanway-kit example --brokers HOST:PORT --topic TOPIC --run-id ID --out FILE
                      [--traces N] [--big-trace] [--timeout-ms MS] [--compression C]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "golden":
		err = runGolden(os.Args[2:])
	case "example":
		err = runExample(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "spanway-kit: unknown command %q\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "spanway-kit %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
