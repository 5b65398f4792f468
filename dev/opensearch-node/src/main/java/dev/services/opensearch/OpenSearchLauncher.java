package dev.services.opensearch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * Runs a single OpenSearch node in this JVM, with its modules loaded from the classpath.
 *
 * <p>For local development and integration tests only (started by {@code dev/services}). It skips
 * the distribution's bootstrap (no security manager, no JarHell or bootstrap checks, runs as root).
 *
 * <p>Arguments are OpenSearch settings as {@code key=value} (an optional leading {@code -E} is
 * accepted). {@code path.home} is required; everything else has loopback-friendly defaults.
 *
 * <p>More plugins can be loaded from the classpath with the system property
 * {@value #EXTRA_PLUGINS_PROPERTY} (comma-separated class names); unlike the modules above, each
 * of them is required (dev/services uses it for the security plugin, whose absence must not go
 * unnoticed).
 */
public final class OpenSearchLauncher {

    /** Modules loaded from the classpath; one that is missing is skipped with a warning. */
    static final List<String> PLUGIN_CLASSES = List.of(
        "org.opensearch.transport.Netty4Plugin",
        "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "org.opensearch.index.mapper.MapperExtrasPlugin",
        "org.opensearch.index.reindex.ReindexPlugin",
        "org.opensearch.painless.PainlessPlugin",
        "org.opensearch.script.mustache.MustachePlugin");

    /** System property with more plugin classes to load; a missing one is an error. */
    static final String EXTRA_PLUGINS_PROPERTY = "dev.services.opensearch.plugins";

    /** Defaults; any of them can be overridden by an argument. */
    static final Map<String, String> DEFAULTS = Map.of(
        "cluster.name", "dev-services",
        "node.name", "node-1",
        "network.host", "127.0.0.1",
        "discovery.type", "single-node",
        "http.type", "netty4",
        "transport.type", "netty4",
        // Build machines often have nearly full disks; never block writes because of it.
        "cluster.routing.allocation.disk.threshold_enabled", "false",
        // With a small heap the real-memory parent breaker trips on bulk requests.
        "indices.breaker.total.use_real_memory", "false");

    private OpenSearchLauncher() {}

    /** Exposes Node's protected constructor that takes classpath plugins. */
    static final class ClasspathPluginNode extends Node {
        ClasspathPluginNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        DEFAULTS.forEach(builder::put);
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("-h") || arg.equals("--help")) {
                System.out.println("usage: OpenSearchLauncher path.home=DIR [key=value ...]");
                System.out.println("defaults: " + DEFAULTS);
                return;
            }
            if (arg.equals("-E") && i + 1 < args.length) {
                arg = args[++i];
            } else if (arg.startsWith("-E")) {
                arg = arg.substring(2);
            }
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("expected key=value, got: " + arg);
                System.exit(2);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        String homeValue = builder.get("path.home");
        if (homeValue == null || homeValue.isEmpty()) {
            System.err.println("path.home=DIR is required");
            System.exit(2);
        }
        Path home = Paths.get(homeValue).toAbsolutePath();
        builder.put("path.home", home.toString());
        Path config = home.resolve("config");
        prepareHome(home, config);

        Logger logger = LogManager.getLogger(OpenSearchLauncher.class);
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            builder.build(), Map.of(), config, () -> "node-1");

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGIN_CLASSES) {
            try {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException | LinkageError | ClassCastException e) {
                logger.warn("skipping plugin {}: {}", name, e.toString());
            }
        }
        for (String name : System.getProperty(EXTRA_PLUGINS_PROPERTY, "").split(",")) {
            if (name.isBlank()) {
                continue;
            }
            try {
                plugins.add(Class.forName(name.trim()).asSubclass(Plugin.class));
            } catch (ClassNotFoundException | LinkageError | ClassCastException e) {
                logger.error("cannot load plugin {} named in -D{}", name, EXTRA_PLUGINS_PROPERTY, e);
                System.exit(1);
                return;
            }
        }
        logger.info("classpath plugins: {}", plugins);

        CountDownLatch stopped = new CountDownLatch(1);
        Node node;
        try {
            node = new ClasspathPluginNode(environment, plugins);
        } catch (Exception e) {
            logger.error("failed to create the node", e);
            System.exit(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    logger.warn("node did not close within 20s");
                }
            } catch (IOException | InterruptedException | RuntimeException e) {
                logger.warn("error while closing the node", e);
            } finally {
                stopped.countDown();
                LogManager.shutdown();
            }
        }, "opensearch-launcher-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            logger.error("failed to start the node", e);
            System.exit(1);
        }
        logger.info("node started: http {}", environment.settings().get("http.port", "9200"));
        // Keep the JVM alive until SIGTERM/SIGINT runs the shutdown hook.
        stopped.await();
    }

    private static void prepareHome(Path home, Path config) throws IOException {
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("modules"));
        Files.createDirectories(home.resolve("plugins"));
        Path yml = config.resolve("opensearch.yml");
        if (!Files.exists(yml)) {
            Files.createFile(yml);
        }
    }
}
