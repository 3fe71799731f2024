#!/usr/bin/env node
// Development helper: serve a built console (admin-ui/dist) over HTTPS and forward /api/* and
// /healthz to a running mailstead. Useful when the server binary was built with
// MAILSTEAD_SKIP_UI_BUILD=1 (placeholder console), or to try a fresh UI build against a server
// without rebuilding it. The e2e test uses it when E2E_UI_DIST is set.
//
//   node dev/ui-proxy.mjs --upstream https://127.0.0.1:8443 --listen 127.0.0.1:8444 \
//        --cert DATA/tls/cert.pem --key DATA/tls/key.pem [--dist dist]
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

function isProxied(p) {
  return p === '/healthz' || p === '/api' || p.startsWith('/api/');
}

/** Starts the proxy; resolves to { server, url, close() }. */
export function startUiProxy({ distDir, upstream, key, cert, host = '127.0.0.1', port = 0 }) {
  const dist = path.resolve(distDir);
  const up = new URL(upstream);
  const agent = new https.Agent({ rejectUnauthorized: false, keepAlive: true });

  const server = https.createServer({ key, cert }, (req, res) => {
    const url = new URL(req.url, 'https://proxy.invalid');
    if (isProxied(url.pathname)) {
      const headers = { ...req.headers, host: up.host };
      const preq = https.request(
        { protocol: up.protocol, hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent },
        (pres) => {
          res.writeHead(pres.statusCode ?? 502, pres.headers);
          pres.pipe(res);
        },
      );
      preq.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'bad_gateway', message: `ui-proxy: upstream failed: ${e.message}` } }));
      });
      req.pipe(preq);
      return;
    }
    let rel = decodeURIComponent(url.pathname).replace(/^\/+/, '');
    let file = path.join(dist, path.normalize(rel));
    if (!rel || !file.startsWith(dist + path.sep) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      file = path.join(dist, 'index.html');
    }
    if (!fs.existsSync(file)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end(`ui-proxy: ${dist} has no index.html (run npm run build in admin-ui)`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cache-Control': 'no-cache',
    });
    fs.createReadStream(file).pipe(res);
  });

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({
        server,
        url: `https://${host}:${addr.port}`,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections?.();
            server.close(() => r());
            agent.destroy();
          }),
      });
    });
  });
}

// CLI
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => {
    const i = process.argv.indexOf(n);
    return i >= 0 ? process.argv[i + 1] : d;
  };
  const here = path.dirname(fileURLToPath(import.meta.url));
  const [host, port] = arg('--listen', '127.0.0.1:8444').split(/:(?=\d+$)/);
  const p = await startUiProxy({
    distDir: arg('--dist', path.join(here, '..', 'dist')),
    upstream: arg('--upstream', 'https://127.0.0.1:8443'),
    cert: fs.readFileSync(arg('--cert')),
    key: fs.readFileSync(arg('--key')),
    host,
    port: Number(port),
  });
  console.log(`ui-proxy on ${p.url} -> ${arg('--upstream', 'https://127.0.0.1:8443')}`);
}
