<?php
// A loopback service for the distributed-tracing tests: it accepts one HTTP/1.1 request and serves
// it by calling URL (argv[1]) over HTTP/2 with prior knowledge, through PHP's curl extension
// (libcurl and its nghttp2, loaded RTLD_DEEPBIND), from the thread that serves the request. It
// answers "h2 STATUS" when the call went over HTTP/2. Same contract as http_server.py: stdout
// carries exactly one line, "PORT <n>", once it listens; it exits after the one request.
$srv = stream_socket_server("tcp://127.0.0.1:0", $errno, $errstr);
if (!$srv) {
  fwrite(STDERR, "h2_caller: listen: $errstr\n");
  exit(1);
}
$name = stream_socket_get_name($srv, false);
fwrite(STDOUT, "PORT " . substr($name, strrpos($name, ':') + 1) . "\n");
$c = stream_socket_accept($srv, 30);
if (!$c) exit(1);
$req = '';
while (strpos($req, "\r\n\r\n") === false && ($chunk = fread($c, 4096)) !== false && $chunk !== '') $req .= $chunk;
$h = curl_init($argv[1]);
curl_setopt($h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
curl_setopt($h, CURLOPT_RETURNTRANSFER, true);
curl_exec($h);
$out = (curl_getinfo($h, CURLINFO_HTTP_VERSION) == CURL_HTTP_VERSION_2_0 ? "h2 " : "not h2 ")
     . curl_getinfo($h, CURLINFO_RESPONSE_CODE) . "\n";
fwrite($c, "HTTP/1.1 200 OK\r\nContent-Length: " . strlen($out) . "\r\nConnection: close\r\n\r\n" . $out);
fclose($c);
