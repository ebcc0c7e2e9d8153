#!/usr/bin/env node
// serve.mjs - the static server behind `make serve` (node built-ins only).
//
//   node tools/serve.mjs [--port 8000] [--host 127.0.0.1] [--weights DIR]
//                        [--frame-ancestors "'self' https://portal.example"] [--log]
//
// Serves   /            web/           (the page, widget and styles)
//          /wasm/       build/wasm/    (csasn.mjs, csasn.wasm, csasn.js, worker.js)
//          /weights/    weights/       (manifest.json, *.csasn, model cards)
// on localhost only. --port 0 picks a free port; the first line printed is the URL.
// --log prints one line per request (`req GET /path 200`), which the browser test reads to
// prove that opening images makes no request.
//
// --frame-ancestors is also the portal's allow-list: it is written into embed.html's
// <meta name="csasn-portal-origins"> as the page is served (web/embed.js obeys only those
// origins), so who may embed the page and whose messages it obeys are one configuration.
//
// Every response carries the privacy and isolation headers: a Content-Security-Policy that
// allows nothing but this origin (and wasm compilation), COOP/COEP so the page is
// cross-origin isolated (threads), nosniff and no referrer.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { port: 8000, host: '127.0.0.1', weights: path.join(ROOT, 'weights'), frameAncestors: "'self'", log: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') o.port = Number(v());
    else if (a === '--host') o.host = v();
    else if (a === '--weights') o.weights = path.resolve(v());
    else if (a === '--frame-ancestors') o.frameAncestors = v();
    else if (a === '--log') o.log = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node tools/serve.mjs [--port N] [--host H] [--weights DIR] [--frame-ancestors SRC] [--log]');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('--port must be 0..65535');
  if (/[;,\r\n]/.test(o.frameAncestors)) throw new Error('--frame-ancestors: sources only, no ; or newlines');
  return o;
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.md': 'text/plain; charset=utf-8', // model cards: shown as text (browsers download text/markdown)
  '.txt': 'text/plain; charset=utf-8',
  '.csasn': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
};

export function securityHeaders(frameAncestors = "'self'") {
  const csp = [
    "default-src 'self'",
    "connect-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "img-src 'self' blob: data:",
    "style-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    `frame-ancestors ${frameAncestors}`,
  ].join('; ');
  return {
    'Content-Security-Policy': csp,
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  };
}

// URL prefix -> folder. Longest prefix first.
function mounts(o) {
  return [
    ['/wasm/', path.join(ROOT, 'build', 'wasm')],
    ['/weights/', o.weights],
    ['/', path.join(ROOT, 'web')],
  ];
}

function resolvePath(o, pathname) {
  for (const [prefix, dir] of mounts(o)) {
    if (!pathname.startsWith(prefix)) continue;
    let rel = pathname.slice(prefix.length);
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = path.resolve(dir, rel);
    // No escaping the mount (../, encoded or not) and no dot-files.
    if (file !== dir && !file.startsWith(dir + path.sep)) return null;
    if (rel.split('/').some((s) => s.startsWith('.'))) return null;
    return { file, prefix };
  }
  return null;
}

function cacheControl(prefix, file, query) {
  // Model files requested as /weights/x.csasn?v=<sha256> are content-addressed: the manifest
  // (never cached) names the hash, so the browser may keep the bytes for a year. Everything
  // else revalidates (cheap 304s) so a rebuilt page or wasm is picked up at once.
  if (prefix === '/weights/' && !file.endsWith('manifest.json') && query.has('v')) {
    return 'public, max-age=31536000, immutable';
  }
  // The service worker script: the browser checks it for updates at moments of its own
  // choosing (navigations, registrations, events), which would be requests after the page has
  // loaded. Kept for an hour in the HTTP cache (web/boot.js registers it with updateViaCache
  // 'all'), those checks are answered locally; a new sw.js is picked up within the hour (the
  // pages, the runtime and the manifest revalidate at every load as before).
  if (prefix === '/' && path.basename(file) === 'sw.js') return 'max-age=3600';
  return 'no-cache';
}

export function createServer(o) {
  const sec = securityHeaders(o.frameAncestors);
  return http.createServer((req, res) => {
    let status = 500;
    const done = () => { if (o.log) console.log(`req ${req.method} ${req.url} ${status}`); };
    const fail = (code, text) => {
      status = code;
      res.writeHead(code, { ...sec, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text + '\n');
      done();
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method not allowed');
    let url;
    try {
      url = new URL(req.url, 'http://localhost');
    } catch {
      return fail(400, 'bad request');
    }
    let pathname;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return fail(400, 'bad request');
    }
    if (pathname.includes('\0')) return fail(400, 'bad request');
    const hit = resolvePath(o, pathname);
    if (!hit) return fail(404, 'not found');
    // embed.html carries the portal allow-list in a meta tag: the same sources as the
    // frame-ancestors directive, written in here, so there is one configuration (web/embed.js).
    const serveEmbed = (file, headers) => {
      fs.readFile(file, 'utf8', (err, text) => {
        if (err) return fail(404, 'not found');
        const esc = o.frameAncestors.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
        const body = Buffer.from(text.replace(/<meta name="csasn-portal-origins" content="[^"]*">/, `<meta name="csasn-portal-origins" content="${esc}">`));
        status = 200;
        res.writeHead(200, { ...headers, 'Content-Length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
        done();
      });
    };
    fs.stat(hit.file, (err, st) => {
      if (err || !st.isFile()) return fail(404, 'not found');
      const etag = '"' + crypto.createHash('sha1').update(`${st.size}-${st.mtimeMs}-${hit.file}-${o.frameAncestors}`).digest('hex').slice(0, 20) + '"';
      const headers = {
        ...sec,
        'Content-Type': MIME[path.extname(hit.file).toLowerCase()] || 'application/octet-stream',
        'Cache-Control': cacheControl(hit.prefix, hit.file, url.searchParams),
        ETag: etag,
        'Last-Modified': st.mtime.toUTCString(),
      };
      if (req.headers['if-none-match'] === etag) {
        status = 304;
        res.writeHead(304, headers);
        res.end();
        return done();
      }
      if (hit.prefix === '/' && path.basename(hit.file) === 'embed.html') return serveEmbed(hit.file, headers);
      status = 200;
      res.writeHead(200, { ...headers, 'Content-Length': st.size });
      if (req.method === 'HEAD') {
        res.end();
        return done();
      }
      const s = fs.createReadStream(hit.file);
      s.on('error', () => res.destroy());
      s.pipe(res);
      res.on('finish', done);
    });
  });
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(2);
  }
  if (!fs.existsSync(path.join(ROOT, 'build', 'wasm', 'csasn.wasm'))) {
    console.error('serve.mjs: warning: build/wasm/csasn.wasm is missing: run `make serve` (or `make wasm`)');
  }
  if (!fs.existsSync(path.join(o.weights, 'manifest.json'))) {
    console.error(`serve.mjs: warning: ${path.join(o.weights, 'manifest.json')} is missing: the page will have no model to offer`);
  }
  const server = createServer(o);
  server.on('error', (e) => {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(1);
  });
  server.listen(o.port, o.host, () => {
    const { port } = server.address();
    const host = o.host.includes(':') ? `[${o.host}]` : o.host;
    console.log(`csasn: serving http://${host}:${port}/  (Ctrl-C to stop)`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive sockets would otherwise hold close() open
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
