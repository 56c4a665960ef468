#!/usr/bin/env python3
"""Serves the packages scripts/fetch-deps-fixtures.sh downloaded as a package mirror on
loopback, in the layouts an airlock runner's --mirror expects:

  /cargo/NAME/VERSION/download      <- DIR/cargo/NAME-VERSION.crate
  /npm/NAME/-/UNSCOPED-VERSION.tgz  <- DIR/npm/NAME-VERSION.tgz ("@scope/x" as "@scope-x")
  /pypi/PROJECT/                    a PEP 503 page listing DIR/pypi/* files of PROJECT,
  /files/FILE                       with #sha256= fragments

Usage: scripts/serve-deps-mirror.py [DIR] [--port PORT]
Prints the --mirror flags to use, then serves until interrupted. For trying the examples
(README); the tests run their own mirror.
"""
import argparse
import hashlib
import html
import http.server
import os
import re
import sys


def project_of(filename):
    return re.sub(r"[-_.]+", "-", filename.split("-")[0]).lower()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=os.path.join(here, "..", "target", "deps-fixtures"))
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    root = os.path.abspath(args.dir)
    if not os.path.isdir(os.path.join(root, "cargo")):
        sys.exit(f"{root} has no fixtures: run scripts/fetch-deps-fixtures.sh first")

    class Handler(http.server.BaseHTTPRequestHandler):
        def send(self, status, body=b"", ctype="application/octet-stream"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def file(self, path):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    return self.send(200, f.read())
            self.send(404)

        def do_GET(self):
            p = self.path.split("?")[0].replace("%40", "@")
            m = re.fullmatch(r"/cargo/([A-Za-z0-9_-]+)/([^/]+)/download", p)
            if m:
                return self.file(os.path.join(root, "cargo", f"{m[1]}-{m[2]}.crate"))
            m = re.fullmatch(r"/npm/((?:@[^/]+/)?[^/]+)/-/[^/]+-([^/]+)\.tgz", p)
            if m:
                return self.file(os.path.join(root, "npm", f"{m[1].replace('/', '-')}-{m[2]}.tgz"))
            m = re.fullmatch(r"/pypi/([a-z0-9-]+)/", p)
            if m:
                links = []
                for name in sorted(os.listdir(os.path.join(root, "pypi"))):
                    if project_of(name) == m[1]:
                        with open(os.path.join(root, "pypi", name), "rb") as f:
                            digest = hashlib.sha256(f.read()).hexdigest()
                        n = html.escape(name)
                        links.append(f'<a href="../../files/{n}#sha256={digest}">{n}</a><br/>')
                if not links:
                    return self.send(404)
                page = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
                return self.send(200, page.encode(), "text/html")
            m = re.fullmatch(r"/files/([A-Za-z0-9._+!-]+)", p)
            if m:
                return self.file(os.path.join(root, "pypi", m[1]))
            self.send(404)

        def log_message(self, fmt, *a):
            sys.stderr.write("mirror: " + (fmt % a) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(" ".join(f"--mirror {e}={url}/{e}" for e in ("cargo", "npm", "pypi")), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
