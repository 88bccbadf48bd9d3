// Debian's nginx as a reverse proxy on loopback: master + one worker (an epoll loop) with a
// keep-alive upstream pool in front of one backend. Traced when the RunOptions say so. `http`
// adds lines to the http block (a log_format and access_log, say); `listen` to the listen
// directive (" http2": h2c with prior knowledge).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/integration/harness.h"

namespace httptrace::itest {

class NginxProxy {
 public:
  NginxProxy(const fs::path& dir, const RunOptions& o, int backend_port, int port, const std::string& http = "",
             const std::string& listen = "")
      : port_(port) {
    const std::string d = dir.string();
    std::ofstream conf(dir / "nginx.conf");
    conf << "daemon off;\n"
         // The readiness signal: the master logs starting its worker once it listens.
         << "error_log /dev/stdout notice;\n"
         << "pid " << d << "/nginx.pid;\n"
         // As root the workers would drop to nobody and could not create their trace files.
         << (geteuid() == 0 ? "user root;\n" : "")
         << "worker_processes 1;\nevents { worker_connections 64; }\n"
         << "http {\n" << (http.empty() ? "  access_log off;\n" : http)
         << "  client_body_temp_path " << d << "/body;\n  proxy_temp_path " << d << "/proxy;\n"
         << "  fastcgi_temp_path " << d << "/fcgi;\n  uwsgi_temp_path " << d << "/uwsgi;\n"
         << "  scgi_temp_path " << d << "/scgi;\n"
         << "  upstream backend { server 127.0.0.1:" << backend_port << "; keepalive 4; }\n"
         << "  server {\n    listen 127.0.0.1:" << port << listen << ";\n"
         << "    location / { proxy_pass http://backend; proxy_http_version 1.1;\n"
         << "                 proxy_set_header Connection \"\"; }\n  }\n}\n";
    conf.close();
    if (!child_.start({"nginx", "-e", "/dev/stdout", "-p", d, "-c", (dir / "nginx.conf").string()}, o, false, &error_)) return;
    std::string line;
    for (int i = 0; i < 50; ++i) {  // bounded: a handful of notice lines come first
      if (!child_.read_line(&line, milliseconds{10000})) break;
      if (line.find("start worker process") != std::string::npos) return;
    }
    error_ = "nginx did not start its worker: " + line + child_.wait(milliseconds{3000}).describe();
  }
  ~NginxProxy() { stop(); }
  NginxProxy(const NginxProxy&) = delete;
  NginxProxy& operator=(const NginxProxy&) = delete;
  RunResult stop() {  // graceful: the master exits after its worker did
    if (stopped_) return {};
    stopped_ = true;
    child_.signal(SIGQUIT);
    return child_.wait(milliseconds{10000});
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  Child child_;
  int port_;
  bool stopped_ = false;
  std::string error_;
};

}  // namespace httptrace::itest
