package dev.services.elasticsearch8.launcher;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;

/**
 * Runs a single Elasticsearch 8 node in this JVM from a home directory that dev/services
 * assembles: {@code config/} (logging), {@code modules/transport-netty4} and
 * {@code modules/rest-root}. The server jars must be on the module path: 8.x resolves its
 * qualified exports through the server's module descriptor and fails on the class path.
 *
 * <p>For local development and integration tests only. It skips the distribution's bootstrap (no
 * entitlements or security manager, no bootstrap checks, runs as root), and has no x-pack: no
 * security, no ILM, no data streams' lifecycle, no painless.
 *
 * <p>Arguments are settings as {@code key=value} (an optional leading {@code -E} is accepted);
 * {@code path.home} is required.
 */
public final class Elasticsearch8Launcher {

    /** Defaults; any of them can be overridden by an argument. */
    static final Map<String, String> DEFAULTS = Map.of(
        "cluster.name", "dev-services-es8",
        "node.name", "node-1",
        "network.host", "127.0.0.1",
        "discovery.type", "single-node",
        // Build machines often have nearly full disks; never block writes because of it.
        "cluster.routing.allocation.disk.threshold_enabled", "false",
        // With a small heap the real-memory parent breaker trips on bulk requests.
        "indices.breaker.total.use_real_memory", "false");

    private Elasticsearch8Launcher() {}

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        DEFAULTS.forEach(builder::put);
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("-h") || arg.equals("--help")) {
                System.out.println("usage: Elasticsearch8Launcher path.home=DIR [key=value ...]");
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

        LogConfigurator.configureESLogging();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            builder.build(), Map.of(), home.resolve("config"), () -> "node-1");
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(environment.settings()));
        LogConfigurator.configure(environment, true);
        Logger logger = LogManager.getLogger(Elasticsearch8Launcher.class);

        Node node;
        try {
            node = new Node(environment);
        } catch (Exception e) {
            logger.error("failed to create the node", e);
            System.err.println("failed to create the node: " + e);
            System.exit(1);
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    logger.warn("node did not close within 20s");
                }
            } catch (Exception e) {
                logger.warn("error while closing the node", e);
            } finally {
                stopped.countDown();
                LogManager.shutdown();
            }
        }, "elasticsearch8-launcher-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            logger.error("failed to start the node", e);
            System.err.println("failed to start the node: " + e);
            System.exit(1);
        }
        logger.info("node started: http {}", environment.settings().get("http.port", "9200"));
        // Keep the JVM alive until SIGTERM/SIGINT runs the shutdown hook.
        stopped.await();
    }
}
