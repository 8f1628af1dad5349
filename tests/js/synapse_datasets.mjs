// synapse-core's data-set calls against one of our nodes. Usage:
//   node synapse_datasets.mjs <serviceURL> <recordKeeper> <pieceCid> <pieceCid2>
// The pieces must already be on the node. extraData here is a placeholder: the node's chain is
// the in-process fake of the route-shape test, which verifies no signature (the devnet does).
import * as SP from '@filoz/synapse-core/sp'
import * as Piece from '@filoz/synapse-core/piece'

const [serviceURL, recordKeeper, cid1, cid2] = process.argv.slice(2)
const extraData = '0x1234'
const out = {}

const created = await SP.createDataSetAndAddPiecesApiRequest({
  serviceURL,
  recordKeeper,
  extraData,
  pieces: [Piece.parse(cid1)],
})
const done = await SP.waitForCreateDataSetAddPieces({ statusUrl: created.statusUrl })
out.createAndAdd = {
  txHash: created.txHash,
  hash: done.hash,
  dataSetId: String(done.dataSetId),
  pieceIds: done.piecesIds.map(String),
}

const dataSet = await SP.getDataSet({ serviceURL, dataSetId: done.dataSetId })
out.getDataSet = {
  id: String(dataSet.id),
  nextChallengeEpoch: dataSet.nextChallengeEpoch,
  pieces: dataSet.pieces.map((p) => [String(p.pieceId), p.pieceCid.toString()]),
}

const added = await SP.addPiecesApiRequest({
  serviceURL,
  dataSetId: done.dataSetId,
  pieces: [Piece.parse(cid2)],
  extraData,
})
const addDone = await SP.waitForAddPieces({ statusUrl: added.statusUrl, pollInterval: 100 })
out.addPieces = { txStatus: addDone.txStatus, pieceIds: addDone.confirmedPieceIds.map(String) }

const empty = await SP.createDataSetApiRequest({ serviceURL, recordKeeper, extraData })
const emptyDone = await SP.waitForCreateDataSet({ statusUrl: empty.statusUrl, pollInterval: 100 })
out.createDataSet = { dataSetCreated: emptyDone.dataSetCreated, id: String(emptyDone.dataSetId) }

const removed = await SP.deletePiece({
  serviceURL,
  dataSetId: done.dataSetId,
  pieceId: addDone.confirmedPieceIds[0],
  extraData,
})
out.deletePiece = { hash: removed.hash }

console.log(JSON.stringify(out))
