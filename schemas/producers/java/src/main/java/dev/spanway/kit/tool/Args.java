package dev.spanway.kit.tool;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** {@code --name value} and {@code --flag} arguments. */
final class Args {
  private static final Set<String> FLAGS = Set.of("big-trace");
  private final Map<String, String> values = new HashMap<>();

  static final class UsageException extends Exception {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
      super(message);
    }
  }

  static Args parse(String[] argv) throws UsageException {
    Args a = new Args();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (!arg.startsWith("--")) {
        throw new UsageException("unexpected argument " + arg);
      }
      String name = arg.substring(2);
      int eq = name.indexOf('=');
      if (eq >= 0) {
        a.values.put(name.substring(0, eq), name.substring(eq + 1));
      } else if (FLAGS.contains(name)) {
        a.values.put(name, "true");
      } else if (i + 1 < argv.length) {
        a.values.put(name, argv[++i]);
      } else {
        throw new UsageException("--" + name + " needs a value");
      }
    }
    return a;
  }

  String required(String name) throws UsageException {
    String v = values.get(name);
    if (v == null || v.isEmpty()) {
      throw new UsageException("--" + name + " is required");
    }
    return v;
  }

  String get(String name, String fallback) {
    return values.getOrDefault(name, fallback);
  }

  int integer(String name, int fallback) throws UsageException {
    String v = values.get(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " " + v + ": not an integer");
    }
  }

  boolean flag(String name) {
    return values.containsKey(name);
  }
}
