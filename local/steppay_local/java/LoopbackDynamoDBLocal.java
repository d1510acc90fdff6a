// Starts DynamoDB Local exactly as `java -jar DynamoDBLocal.jar <args>` does, except that its Jetty
// connector listens on 127.0.0.1 only (the jar itself binds every interface), and that it exits when
// its standard input closes (the local stack that started it has gone away).
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("steppay.local.host", "127.0.0.1");
        CommandLineInput input = new CommandLineInput(args);
        if (!input.init()) {
            return;
        }
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        for (Connector connector : jetty.getConnectors()) {
            if (connector instanceof ServerConnector) {
                ((ServerConnector) connector).setHost(host);
            }
        }
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // keep reading until the parent closes the pipe
                }
            } catch (Exception ignored) {
                // treat as closed
            }
            Runtime.getRuntime().halt(0);
        }, "parent-watcher");
        watcher.setDaemon(true);
        watcher.start();
        proxy.start();
        proxy.join();
    }
}
