// Seeds a file from one headless Chromium and downloads it into others,
// with the webtorrent library, through our tracker only. Run by
// webtorrent_test.go inside a network namespace of its own (see there);
// prints one JSON line with what each browser saw.
//
// Environment: TRACKER_SOCKET (a unix socket that reaches the tracker's
// WebSocket listener), LEECHER_TRACKER_SOCKET (optional: the leechers
// announce there instead, to another instance of the tracker), TEST_FILE
// (the file to seed), LEECHERS (how many browsers download it),
// TIMEOUT_MS.
import { chromium } from 'playwright-core'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const socketPath = process.env.TRACKER_SOCKET
const leecherSocketPath = process.env.LEECHER_TRACKER_SOCKET || socketPath
const payload = fs.readFileSync(process.env.TEST_FILE)
const leechers = Number(process.env.LEECHERS || 2)
const timeoutMs = Number(process.env.TIMEOUT_MS || 120000)

// The browsers reach the tracker at 127.0.0.1 of this namespace, relayed
// to the unix socket, which the test relays to the tracker.
const relays = []
async function trackerURL (sock) {
  const relay = net.createServer((c) => {
    const u = net.connect(sock)
    c.pipe(u)
    u.pipe(c)
    c.on('error', () => u.destroy())
    u.on('error', () => c.destroy())
  })
  await new Promise((resolve) => relay.listen(0, '127.0.0.1', resolve))
  relays.push(relay)
  return `ws://127.0.0.1:${relay.address().port}/announce`
}
const tracker = await trackerURL(socketPath)
const leecherTracker = leecherSocketPath === socketPath ? tracker : await trackerURL(leecherSocketPath)

// The pages come from 127.0.0.1, a secure context (webtorrent hashes with
// crypto.subtle).
const bundle = fs.readFileSync(new URL('./node_modules/webtorrent/dist/webtorrent.min.js', import.meta.url))
const html = `<!doctype html><meta charset="utf-8"><title>webtorrent</title>
<script type="module">
import WebTorrent from '/webtorrent.min.js'
window.WebTorrent = WebTorrent
</script>`
const pages = http.createServer((req, res) => {
  if (req.url === '/webtorrent.min.js') {
    res.writeHead(200, { 'content-type': 'text/javascript' })
    res.end(bundle)
    return
  }
  res.writeHead(200, { 'content-type': 'text/html' })
  res.end(html)
})
await new Promise((resolve) => pages.listen(0, '127.0.0.1', resolve))
const pageURL = `http://127.0.0.1:${pages.address().port}/`

const flags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Host candidates as addresses, not mDNS names nobody here resolves.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
]
const contexts = []
async function browser (name) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `chihaya-${name}-`))
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', headless: true, args: flags })
  contexts.push({ ctx, dir })
  const page = ctx.pages()[0] || await ctx.newPage()
  page.on('console', (m) => { if (m.type() === 'error') console.error(`${name}: ${m.text()}`) })
  page.on('pageerror', (e) => console.error(`${name}: ${e}`))
  await page.goto(pageURL)
  await page.waitForFunction(() => window.WebTorrent !== undefined)
  return page
}

function timeout (what) {
  return new Promise((resolve, reject) => setTimeout(() => reject(new Error(`${what}: timed out after ${timeoutMs} ms`)), timeoutMs))
}

let result
try {
  const seeder = await browser('seeder')
  const seeded = await Promise.race([timeout('seed'), seeder.evaluate(async ({ b64, tracker }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
    // Only our tracker: webtorrent's defaults name public ones.
    globalThis.WEBTORRENT_ANNOUNCE = [tracker]
    const client = new window.WebTorrent({ tracker: { rtcConfig: { iceServers: [] } } })
    window.client = client
    return await new Promise((resolve, reject) => {
      client.on('error', (e) => reject(new Error(String(e))))
      client.seed(new File([bytes], 'payload.bin'), { announce: [tracker], announceList: [[tracker]] }, (t) => {
        let s = ''
        for (const b of t.torrentFile) s += String.fromCharCode(b)
        resolve({ infoHash: t.infoHash, torrent: btoa(s) })
      })
    })
  }, { b64: payload.toString('base64'), tracker })])

  const downloads = []
  for (let i = 0; i < leechers; i++) {
    const page = await browser(`leecher${i}`)
    downloads.push(Promise.race([timeout(`leecher ${i}`), page.evaluate(async ({ torrent, infoHash, tracker }) => {
      globalThis.WEBTORRENT_ANNOUNCE = [tracker]
      // The torrent file names the seeder's tracker, which webtorrent
      // would announce to as well: a leecher of another instance starts
      // from the info hash alone, and gets the metadata from its peers.
      const buf = torrent ? Uint8Array.from(atob(torrent), (c) => c.charCodeAt(0)) : `magnet:?xt=urn:btih:${infoHash}`
      const client = new window.WebTorrent({ tracker: { rtcConfig: { iceServers: [] } } })
      return await new Promise((resolve, reject) => {
        client.on('error', (e) => reject(new Error(String(e))))
        client.add(buf, { announce: [tracker] }, (t) => {
          const done = async () => {
            const ab = await t.files[0].arrayBuffer()
            const h = new Uint8Array(await crypto.subtle.digest('SHA-256', ab))
            resolve({
              infoHash: t.infoHash,
              length: ab.byteLength,
              sha256: Array.from(h, (b) => b.toString(16).padStart(2, '0')).join(''),
              peers: t.numPeers,
            })
          }
          if (t.done) done()
          else t.on('done', done)
        })
      })
    }, { torrent: leecherTracker === tracker ? seeded.torrent : '', infoHash: seeded.infoHash, tracker: leecherTracker })]))
  }
  result = { ok: true, infoHash: seeded.infoHash, leechers: await Promise.all(downloads) }
} catch (e) {
  result = { ok: false, error: String(e && e.stack || e) }
}
for (const { ctx, dir } of contexts) {
  await ctx.close().catch(() => {})
  fs.rmSync(dir, { recursive: true, force: true })
}
for (const relay of relays) relay.close()
pages.close()
console.log(JSON.stringify(result))
process.exit(result.ok ? 0 : 1)
