// The real FOC client code (npm @filoz/synapse-core, pinned in package-lock.json) against one
// of our nodes. Usage: node synapse_client.mjs <serviceURL> ; prints one JSON line of results.
// Every call below is synapse-core's own; only the Range read uses the HTTP helper that
// synapse-core itself uses (iso-web), since synapse-core's download() takes no Range.
import { createHash } from 'node:crypto'
import { request } from 'iso-web/http'
import * as Piece from '@filoz/synapse-core/piece'
import * as SP from '@filoz/synapse-core/sp'

const serviceURL = process.argv[2].replace(/\/?$/, '/')
const out = {}

function bytes(n, seed) {
  const data = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    data[i] = x >>> 24
  }
  return data
}

function hex(data) {
  return Buffer.from(data).toString('hex')
}

function sha256(data) {
  return createHash('sha256').update(data).digest('hex')
}

out.ping = await SP.ping(serviceURL).then(() => 'ok', (e) => `error: ${e.message}`)

// uploadPiece: POST /pdp/piece, then PUT /pdp/piece/upload/{uuid}
const first = bytes(5000, 1)
const firstCid = Piece.calculate(first)
await SP.uploadPiece({ data: first, pieceCid: firstCid, serviceURL })
const foundFirst = await SP.findPiece({ pieceCid: firstCid, serviceURL, retry: true })
out.upload = { pieceCid: firstCid.toString(), found: foundFirst.toString(), sha256: sha256(first) }
// uploading the same piece again: POST /pdp/piece answers 200, nothing to PUT
await SP.uploadPiece({ data: first, pieceCid: firstCid, serviceURL })
out.uploadAgain = 'ok'

// uploadPieceStreaming: POST /pdp/piece/uploads, PUT .../{uuid}, POST .../{uuid} {pieceCid}
const second = bytes(70000, 2)
const streamed = await SP.uploadPieceStreaming({ data: second, serviceURL })
const foundSecond = await SP.findPiece({ pieceCid: streamed.pieceCid, serviceURL, retry: true })
out.streaming = {
  pieceCid: streamed.pieceCid.toString(),
  expected: Piece.calculate(second).toString(),
  size: streamed.size,
  found: foundSecond.toString(),
  sha256: sha256(second),
}

// findPiece for a piece the node does not have: FindPieceError (404), no retry
const missing = Piece.calculate(bytes(300, 3))
out.findMissing = await SP.findPiece({ pieceCid: missing, serviceURL }).then(
  () => 'found?!',
  (e) => `${e.name}: ${e.message}`,
)

// download, whole piece, with synapse-core's download and downloadAndValidate (commP re-checked)
const url = Piece.createPieceUrlPDP({ cid: firstCid.toString(), serviceURL })
const whole = await Piece.download({ url })
const validated = await Piece.downloadAndValidate({ url, expectedPieceCid: firstCid })
out.download = { equal: hex(whole) === hex(first), validated: hex(validated) === hex(first) }

// download with Range
const ranged = await request.get(url, { headers: { Range: 'bytes=100-1099' } })
const part = new Uint8Array(await ranged.result.arrayBuffer())
out.range = {
  status: ranged.result.status,
  contentRange: ranged.result.headers.get('content-range'),
  equal: hex(part) === hex(first.subarray(100, 1100)),
}

console.log(JSON.stringify(out))
