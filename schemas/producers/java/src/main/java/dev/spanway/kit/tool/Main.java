package dev.spanway.kit.tool;

import java.util.Arrays;

/**
 * Test program of the Java kit: {@code golden} publishes the golden traces of schemas/testdata
 * through it, {@code example} runs a small program instrumented with the OpenTelemetry Java SDK
 * that exports through it. Run through schemas/producers/java/run.
 */
public final class Main {
  static final String USAGE =
      "usage:\n"
          + "  golden --brokers HOST:PORT --topic TOPIC --testdata DIR [--compression C] [--timeout-ms MS]\n"
          + "  example --brokers HOST:PORT --topic TOPIC --run-id ID --out FILE\n"
          + "          [--traces N] [--big-trace] [--timeout-ms MS] [--compression C]";

  private Main() {}

  public static void main(String[] argv) {
    if (argv.length == 0) {
      System.err.println(USAGE);
      System.exit(2);
    }
    String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
    int code;
    try {
      switch (argv[0]) {
        case "golden" -> code = Golden.run(Args.parse(rest));
        case "example" -> code = Example.run(Args.parse(rest));
        default -> {
          System.err.println("unknown command " + argv[0] + "\n" + USAGE);
          code = 2;
        }
      }
    } catch (Args.UsageException e) {
      System.err.println(argv[0] + ": " + e.getMessage() + "\n" + USAGE);
      code = 2;
    } catch (Exception e) {
      System.err.println(argv[0] + ": " + e);
      code = 1;
    }
    System.out.flush();
    // Kafka's and the SDK's threads are not all daemons: leave explicitly.
    System.exit(code);
  }
}
