package dev.spanway.kit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.junit.jupiter.api.Test;

/**
 * The kit leaves partitioner.class unset, so kafka-clients hashes keyed records with {@link
 * BuiltInPartitioner#partitionForKey}: it must put every golden key where the manifests say.
 */
class PartitionTest {
  private static final Pattern KEY = Pattern.compile("\"key\"\\s*:\\s*\"([^\"]+)\"");
  private static final Pattern COUNTS =
      Pattern.compile("\"partition_for_partition_count\"\\s*:\\s*\\{([^}]*)\\}");
  private static final Pattern ENTRY = Pattern.compile("\"(\\d+)\"\\s*:\\s*(\\d+)");

  @Test
  void defaultPartitionerMatchesGoldenManifests() throws Exception {
    Path dir = Path.of(System.getProperty("spanway.testdata", "../../testdata"));
    int checked = 0;
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.json")) {
      for (Path p : ds) {
        String json = Files.readString(p);
        Matcher key = KEY.matcher(json);
        Matcher counts = COUNTS.matcher(json);
        if (!key.find() || !counts.find()) {
          continue;
        }
        byte[] k = key.group(1).getBytes(StandardCharsets.UTF_8);
        Matcher e = ENTRY.matcher(counts.group(1));
        while (e.find()) {
          int n = Integer.parseInt(e.group(1));
          assertEquals(
              Integer.parseInt(e.group(2)),
              BuiltInPartitioner.partitionForKey(k, n),
              p.getFileName() + " with " + n + " partitions");
          checked++;
        }
      }
    }
    assertTrue(checked >= 6, "partition expectations checked: " + checked);
  }
}
