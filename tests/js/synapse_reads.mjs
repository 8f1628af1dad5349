// The real FOC client (npm @filoz/synapse-core, viem) reading our devnet stand-ins.
// argv: RPC_URL CONTRACTS_JSON DATA_SET_ID. Prints one JSON object.
import { createPublicClient, http } from 'viem'
import { devnet } from '@filoz/synapse-core/chains'
import { getPDPProviders } from '@filoz/synapse-core/sp-registry'
import { getApprovedProviderIds, getDataSet } from '@filoz/synapse-core/warm-storage'
import { dataSetLive, getNextChallengeEpoch } from '@filoz/synapse-core/pdp-verifier'

const [rpcUrl, contractsJson, dataSetId] = process.argv.slice(2)
const c = JSON.parse(contractsJson)
const set = (entry, address) => ({ ...entry, address })
const chain = {
  ...devnet,
  rpcUrls: { default: { http: [rpcUrl] } },
  contracts: {
    ...devnet.contracts,
    usdfc: set(devnet.contracts.usdfc, c.usdfc),
    filecoinPay: set(devnet.contracts.filecoinPay, c.filecoin_pay),
    fwss: set(devnet.contracts.fwss, c.fwss),
    fwssView: set(devnet.contracts.fwssView, c.fwss),
    serviceProviderRegistry: set(devnet.contracts.serviceProviderRegistry, c.service_provider_registry),
    pdp: set(devnet.contracts.pdp, c.pdp_verifier),
  },
}
const client = createPublicClient({ chain, transport: http(rpcUrl) })
const json = (v) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? x.toString() : x))
const id = BigInt(dataSetId)
const out = {
  providers: (await getPDPProviders(client, { onlyActive: true })).providers,
  approved: await getApprovedProviderIds(client),
  dataSet: await getDataSet(client, { dataSetId: id }),
  live: await dataSetLive(client, { dataSetId: id }),
  nextChallengeEpoch: await getNextChallengeEpoch(client, { dataSetId: id }),
  notLiveChallengeEpoch: await getNextChallengeEpoch(client, { dataSetId: 999n }),
}
process.stdout.write(json(out))
