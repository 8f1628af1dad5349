// The real FOC client funds Filecoin Pay on the devnet: synapse-core reads the token's permit
// fields through Multicall3 (balanceForPermit), signs the EIP-2612 permit (signErc20Permit), and
// the deposit goes through FilecoinPay.depositWithPermitAndApproveOperator with synapse-core's ABI.
// argv: RPC_URL CONTRACTS_JSON PRIVATE_KEY AMOUNT. Prints one JSON object.
import { createPublicClient, createWalletClient, http, maxUint256, parseSignature } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { waitForTransactionReceipt, writeContract } from 'viem/actions'
import * as Abis from '@filoz/synapse-core/abis'
import { devnet } from '@filoz/synapse-core/chains'
import { balanceForPermit } from '@filoz/synapse-core/erc20'
import { signErc20Permit } from '@filoz/synapse-core/typed-data'

const [rpcUrl, contractsJson, key, amountText] = process.argv.slice(2)
const c = JSON.parse(contractsJson)
const set = (entry, address) => ({ ...entry, address })
const chain = {
  ...devnet,
  rpcUrls: { default: { http: [rpcUrl] } },
  contracts: {
    ...devnet.contracts,
    multicall3: { address: c.multicall3, blockCreated: 0 },
    usdfc: set(devnet.contracts.usdfc, c.usdfc),
    filecoinPay: set(devnet.contracts.filecoinPay, c.filecoin_pay),
    fwss: set(devnet.contracts.fwss, c.fwss),
  },
}
const account = privateKeyToAccount(key)
const wallet = createWalletClient({ account, chain, transport: http(rpcUrl) })
const amount = BigInt(amountText)
const permit = await balanceForPermit(wallet, { address: account.address, token: c.usdfc })
const deadline = BigInt(Math.floor(Date.now() / 1000) + 3600)
const signature = parseSignature(
  await signErc20Permit(wallet, { amount, nonce: permit.nonce, deadline, name: permit.name, version: permit.version })
)
const hash = await writeContract(wallet, {
  address: c.filecoin_pay,
  abi: Abis.filecoinPay,
  functionName: 'depositWithPermitAndApproveOperator',
  args: [c.usdfc, account.address, amount, deadline, Number(signature.v), signature.r, signature.s,
    c.fwss, maxUint256, maxUint256, 86400n],
})
const receipt = await waitForTransactionReceipt(createPublicClient({ chain, transport: http(rpcUrl) }), { hash })
process.stdout.write(JSON.stringify({
  name: permit.name, version: permit.version, nonce: permit.nonce.toString(),
  balance: permit.value.toString(), status: receipt.status,
}))
