// Java programs the integration tests run with `java File.java` (JDK 11+ runs a source file).
#pragma once

namespace httptrace::itest {

// java.net.http over HTTPS, trusting any certificate: GET /j1 then /j2 on one kept-alive
// connection, URL ARGS[0], through the HTTP proxy at 127.0.0.1:ARGS[1] when given (CONNECT).
// Its TLS is the JDK's own: seen only on the wire.
constexpr char kJavaHttpsGet[] = R"(
import java.net.*;
import java.net.http.*;
import java.security.cert.X509Certificate;
import javax.net.ssl.*;
public class Get {
  public static void main(String[] a) throws Exception {
    TrustManager[] all = {new X509TrustManager() {
      public void checkClientTrusted(X509Certificate[] c, String s) {}
      public void checkServerTrusted(X509Certificate[] c, String s) {}
      public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
    }};
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, all, null);
    SSLParameters p = new SSLParameters();
    p.setEndpointIdentificationAlgorithm("");
    HttpClient.Builder b = HttpClient.newBuilder().sslContext(ctx).sslParameters(p)
        .version(HttpClient.Version.HTTP_1_1);
    if (a.length > 1) b.proxy(ProxySelector.of(new InetSocketAddress("127.0.0.1", Integer.parseInt(a[1]))));
    HttpClient c = b.build();
    for (String path : new String[] {"/j1", "/j2"})
      c.send(HttpRequest.newBuilder(URI.create(a[0] + path)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
)";

}  // namespace httptrace::itest
