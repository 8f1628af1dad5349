// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/// @title Multicall3: the subset of the Multicall3 interface that viem (and so synapse-core) calls.
/// @notice Our own implementation of the public interface, placed with anvil_setCode at the
/// address Multicall3 has on every chain (0xcA11bde05977b3631167028862bE2a173976CA11): a fresh
/// anvil has none, and synapse-core batches reads (e.g. a token's name, nonces, version before a
/// permit) through it. Runtime code only: no constructor, no storage.
contract Multicall3 {
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (bool ok, bytes memory data) = calls[i].target.call(calls[i].callData);
            require(ok || calls[i].allowFailure, "Multicall3: call failed");
            returnData[i] = Result(ok, data);
        }
    }

    function getBlockNumber() external view returns (uint256) {
        return block.number;
    }

    function getCurrentBlockTimestamp() external view returns (uint256) {
        return block.timestamp;
    }

    function getEthBalance(address addr) external view returns (uint256) {
        return addr.balance;
    }

    function getChainId() external view returns (uint256) {
        return block.chainid;
    }
}
