// Client programs the integration tests run: java (`java File.java`, JDK 11+ runs a source file),
// node and python's asyncio, each with its own TLS, seen only on the wire.
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

// node's https with a keep-alive agent of one socket: GETs ARGV[1] + each later argument, in turn,
// on one connection (the certificate is not checked).
constexpr char kNodeHttpsGets[] = R"(
const https = require('https');
const agent = new https.Agent({keepAlive: true, maxSockets: 1});
const get = (path) => new Promise((done) => https.get(process.argv[1] + path,
    {agent, rejectUnauthorized: false}, (res) => { res.resume(); res.on('end', done); }));
(async () => { for (const p of process.argv.slice(2)) await get(p); agent.destroy(); })();
)";

// python's asyncio streams over TLS (memory BIOs: read from the wire): GETs sys.argv[1] + each
// later argument on one connection, then sends its close_notify and reads to EOF.
constexpr char kAsyncioHttpsGets[] = R"(
import asyncio, ssl, sys, urllib.parse
async def main(u, paths):
    r, w = await asyncio.open_connection(u.hostname, u.port, ssl=ssl._create_unverified_context())
    for p in paths:
        w.write(b'GET ' + p.encode() + b' HTTP/1.1\r\nHost: x\r\n\r\n')
        head = await r.readuntil(b'\r\n\r\n')
        n = [l for l in head.split(b'\r\n') if l.lower().startswith(b'content-length:')][0]
        await r.readexactly(int(n.split(b':')[1]))
    w.close()
    await w.wait_closed()
asyncio.run(main(urllib.parse.urlsplit(sys.argv[1]), sys.argv[2:]))
)";

}  // namespace httptrace::itest
