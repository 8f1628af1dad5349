// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/// @title MockBeacon: stand-in for the FVM GET_BEACON_RANDOMNESS precompile (0xfE00...0006).
/// @notice Installed with anvil_setCode (runtime code only, no constructor). Input: one 32-byte
/// epoch. Output: 32 bytes, a deterministic value per epoch. Like the real precompile (FIP-0095),
/// it fails for an epoch the chain has not reached yet.
contract MockBeacon {
    fallback(bytes calldata input) external returns (bytes memory) {
        require(input.length == 32, "beacon: input is one 32-byte epoch");
        uint256 epoch = abi.decode(input, (uint256));
        require(epoch <= block.number, "beacon: future epoch");
        return abi.encode(keccak256(abi.encodePacked("depin-devnet-beacon", epoch)));
    }
}
