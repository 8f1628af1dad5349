// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {Cid} from "./PDPVerifier.sol";
import {ValidationResult} from "./FilecoinPay.sol";

interface IRegistryView {
    function getProviderIdByAddress(address providerAddress) external view returns (uint256);
    function getProviderPayee(uint256 providerId) external view returns (address);
}

interface IPayments {
    function createRail(address token, address from, address to, address validator, uint256 bps, address fee)
        external
        returns (uint256);
    function modifyRailPayment(uint256 railId, uint256 newRate, uint256 oneTimePayment) external;
    function modifyRailLockup(uint256 railId, uint256 period, uint256 lockupFixed) external;
}

/// @title FilecoinWarmStorageService: devnet subset of the FWSS record keeper (FOC.md 1.1, 1.2).
/// @notice Our own implementation of the public interface: the PDPVerifier listener callbacks,
/// each checking the client's EIP-712 signature under the domain {name:
/// "FilecoinWarmStorageService", version: "1", chainId, verifyingContract: this} with the
/// published types (the same as gateway/foc/eip712.py); the approved-provider list; a Filecoin
/// Pay rail per data set with FWSS as operator and validator; proving periods of
/// maxProvingPeriod epochs whose challenge lies in the last challengeWindow epochs; settlement
/// pays proven periods only. The StateView views are served by this contract itself
/// (viewContractAddress() is this). Not on the devnet: session keys, CDN rails, termination.
contract FilecoinWarmStorageService {
    uint256 public constant CHALLENGES_PER_PROOF = 5;
    uint256 public constant DEFAULT_LOCKUP_PERIOD = 2880 * 30; // 30 days of 30 s epochs
    uint256 public constant EPOCHS_PER_MONTH = 2880 * 30;
    uint256 public constant PRICE_PER_TIB_PER_MONTH = 2.5 ether; // 2.5 USDFC (18 decimals)
    uint256 public constant MINIMUM_PRICE_PER_MONTH = 0.024 ether; // per data set
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    bytes32 private constant METADATA_ENTRY_TYPEHASH = keccak256("MetadataEntry(string key,string value)");
    bytes32 private constant CREATE_DATA_SET_TYPEHASH = keccak256(
        "CreateDataSet(uint256 clientDataSetId,address payee,MetadataEntry[] metadata)MetadataEntry(string key,string value)"
    );
    bytes32 private constant CID_TYPEHASH = keccak256("Cid(bytes data)");
    bytes32 private constant PIECE_METADATA_TYPEHASH = keccak256(
        "PieceMetadata(uint256 pieceIndex,MetadataEntry[] metadata)MetadataEntry(string key,string value)"
    );
    bytes32 private constant ADD_PIECES_TYPEHASH = keccak256(
        "AddPieces(uint256 clientDataSetId,uint256 nonce,Cid[] pieceData,PieceMetadata[] pieceMetadata)"
        "Cid(bytes data)MetadataEntry(string key,string value)PieceMetadata(uint256 pieceIndex,MetadataEntry[] metadata)"
    );
    bytes32 private constant SCHEDULE_REMOVALS_TYPEHASH =
        keccak256("SchedulePieceRemovals(uint256 clientDataSetId,uint256[] pieceIds)");

    struct DataSetInfoView {
        uint256 pdpRailId;
        uint256 cacheMissRailId;
        uint256 cdnRailId;
        address payer;
        address payee;
        address serviceProvider;
        uint256 commissionBps;
        uint256 clientDataSetId;
        uint256 pdpEndEpoch;
        uint256 providerId;
        uint256 dataSetId;
    }

    struct CreateExtra {
        address payer;
        uint256 clientDataSetId;
        string[] keys;
        string[] values;
        bytes signature;
    }

    struct Proving {
        uint256 activationEpoch; // 0 = proving not started (nextProvingPeriod never called)
        uint256 challengeEpoch;
        mapping(uint256 => bool) provenPeriods;
    }

    address public immutable owner;
    address public immutable pdpVerifierAddress;
    address public immutable paymentsContractAddress;
    address public immutable usdfcTokenAddress;
    address public immutable serviceProviderRegistry;
    uint256 public immutable maxProvingPeriod;
    uint256 public immutable challengeWindowSize;

    uint256[] private approvedProviders;
    mapping(uint256 => bool) public isProviderApproved;
    mapping(uint256 => DataSetInfoView) private dataSets;
    mapping(uint256 => mapping(string => string)) private dataSetMetadata;
    mapping(uint256 => mapping(string => bool)) private dataSetMetadataSet;
    mapping(address => uint256[]) private clientSets;
    mapping(address => mapping(uint256 => bool)) private clientDataSetIdUsed;
    mapping(address => mapping(uint256 => bool)) private addNonceUsed;
    mapping(uint256 => uint256) public railToDataSet;
    mapping(uint256 => Proving) private proving;

    event ProviderApproved(uint256 indexed providerId);
    event DataSetCreated(
        uint256 indexed dataSetId,
        uint256 indexed providerId,
        uint256 pdpRailId,
        uint256 cacheMissRailId,
        uint256 cdnRailId,
        address payer,
        address serviceProvider,
        address payee,
        string[] metadataKeys,
        string[] metadataValues
    );
    event PieceAdded(uint256 indexed dataSetId, uint256 indexed pieceId, Cid pieceCid, string[] keys, string[] values);

    constructor(
        address pdpVerifier,
        address payments,
        address usdfc,
        address registry,
        uint256 _maxProvingPeriod,
        uint256 _challengeWindowSize
    ) {
        require(_challengeWindowSize > 0 && _challengeWindowSize < _maxProvingPeriod, "bad proving config");
        owner = msg.sender;
        (pdpVerifierAddress, paymentsContractAddress) = (pdpVerifier, payments);
        (usdfcTokenAddress, serviceProviderRegistry) = (usdfc, registry);
        (maxProvingPeriod, challengeWindowSize) = (_maxProvingPeriod, _challengeWindowSize);
    }

    modifier onlyPDPVerifier() {
        require(msg.sender == pdpVerifierAddress, "only the PDP verifier");
        _;
    }

    // ---- approved providers -------------------------------------------------------------

    function addApprovedProvider(uint256 providerId) external {
        require(msg.sender == owner, "only the owner");
        require(!isProviderApproved[providerId], "provider already approved");
        isProviderApproved[providerId] = true;
        approvedProviders.push(providerId);
        emit ProviderApproved(providerId);
    }

    /// limit 0 means all: synapse-core's getApprovedProviderIds sends (0, 0) by default.
    function getApprovedProviders(uint256 offset, uint256 limit) external view returns (uint256[] memory providerIds) {
        if (limit == 0) limit = approvedProviders.length;
        uint256 end = offset + limit < approvedProviders.length ? offset + limit : approvedProviders.length;
        providerIds = new uint256[](offset < end ? end - offset : 0);
        for (uint256 i = 0; i < providerIds.length; i++) {
            providerIds[i] = approvedProviders[offset + i];
        }
    }

    function getApprovedProvidersLength() external view returns (uint256) {
        return approvedProviders.length;
    }

    // ---- PDP listener callbacks -----------------------------------------------------------

    function dataSetCreated(uint256 dataSetId, address serviceProvider, bytes calldata extraData)
        external
        onlyPDPVerifier
    {
        require(extraData.length <= 4096, "extraData too long");
        CreateExtra memory extra = _decodeCreate(extraData);
        uint256 providerId = IRegistryView(serviceProviderRegistry).getProviderIdByAddress(serviceProvider);
        require(providerId != 0, "provider not registered");
        require(isProviderApproved[providerId], "provider not approved");
        address payee = IRegistryView(serviceProviderRegistry).getProviderPayee(providerId);
        bytes32 structHash = keccak256(
            abi.encode(
                CREATE_DATA_SET_TYPEHASH,
                extra.clientDataSetId,
                payee,
                _hashMetadata(extra.keys, extra.values, 10)
            )
        );
        _requireSignedBy(structHash, extra.signature, extra.payer);
        require(!clientDataSetIdUsed[extra.payer][extra.clientDataSetId], "clientDataSetId already used");
        clientDataSetIdUsed[extra.payer][extra.clientDataSetId] = true;
        for (uint256 i = 0; i < extra.keys.length; i++) {
            dataSetMetadata[dataSetId][extra.keys[i]] = extra.values[i];
            dataSetMetadataSet[dataSetId][extra.keys[i]] = true;
        }
        uint256 railId = IPayments(paymentsContractAddress).createRail(
            usdfcTokenAddress, extra.payer, payee, address(this), 0, address(0)
        );
        IPayments(paymentsContractAddress).modifyRailLockup(railId, DEFAULT_LOCKUP_PERIOD, 0);
        railToDataSet[railId] = dataSetId;
        dataSets[dataSetId] = DataSetInfoView(
            railId, 0, 0, extra.payer, payee, serviceProvider, 0, extra.clientDataSetId, 0, providerId, dataSetId
        );
        clientSets[extra.payer].push(dataSetId);
        _emitCreated(dataSets[dataSetId], extra);
    }

    function piecesAdded(uint256 dataSetId, uint256 firstAdded, Cid[] calldata pieceData, bytes calldata extraData)
        external
        onlyPDPVerifier
    {
        DataSetInfoView storage info = _dataSet(dataSetId);
        (uint256 nonce, string[][] memory keys, string[][] memory values, bytes memory signature) =
            abi.decode(extraData, (uint256, string[][], string[][], bytes));
        require(keys.length == pieceData.length && values.length == pieceData.length, "metadata per piece");
        bytes32 structHash = keccak256(
            abi.encode(
                ADD_PIECES_TYPEHASH,
                info.clientDataSetId,
                nonce,
                _hashCids(pieceData),
                _hashPieceMetadata(keys, values)
            )
        );
        _requireSignedBy(structHash, signature, info.payer);
        require(!addNonceUsed[info.payer][nonce], "nonce already used");
        addNonceUsed[info.payer][nonce] = true;
        for (uint256 i = 0; i < pieceData.length; i++) {
            emit PieceAdded(dataSetId, firstAdded + i, pieceData[i], keys[i], values[i]);
        }
    }

    function piecesScheduledRemove(uint256 dataSetId, uint256[] calldata pieceIds, bytes calldata extraData)
        external
        onlyPDPVerifier
    {
        require(extraData.length <= 256, "extraData too long");
        DataSetInfoView storage info = _dataSet(dataSetId);
        bytes memory signature = abi.decode(extraData, (bytes));
        bytes32 structHash = keccak256(
            abi.encode(SCHEDULE_REMOVALS_TYPEHASH, info.clientDataSetId, keccak256(abi.encodePacked(pieceIds)))
        );
        _requireSignedBy(structHash, signature, info.payer);
    }

    /// The first call starts proving: period 0 is the maxProvingPeriod epochs that end
    /// challengeWindowSize epochs after this first challenge. Each later challenge must fall in
    /// the window (last challengeWindowSize epochs) of a later period than the previous one.
    function nextProvingPeriod(uint256 dataSetId, uint256 challengeEpoch, uint256 leafCount, bytes calldata)
        external
        onlyPDPVerifier
    {
        DataSetInfoView storage info = _dataSet(dataSetId);
        Proving storage state = proving[dataSetId];
        if (state.activationEpoch == 0) {
            require(challengeEpoch > maxProvingPeriod - challengeWindowSize, "challenge epoch too early");
            state.activationEpoch = challengeEpoch - (maxProvingPeriod - challengeWindowSize);
        } else {
            uint256 period = _periodOf(state, challengeEpoch);
            require(challengeEpoch >= state.activationEpoch, "challenge epoch before activation");
            require(period > _periodOf(state, state.challengeEpoch), "one challenge per proving period");
        }
        uint256 offset = (challengeEpoch - state.activationEpoch) % maxProvingPeriod;
        require(offset >= maxProvingPeriod - challengeWindowSize, "challenge epoch outside the challenge window");
        state.challengeEpoch = challengeEpoch;
        uint256 rate = leafCount * 32 * PRICE_PER_TIB_PER_MONTH / (uint256(1) << 40) / EPOCHS_PER_MONTH;
        uint256 minimum = MINIMUM_PRICE_PER_MONTH / EPOCHS_PER_MONTH;
        IPayments(paymentsContractAddress).modifyRailPayment(info.pdpRailId, rate > minimum ? rate : minimum, 0);
    }

    function possessionProven(uint256 dataSetId, uint256, uint256, uint256 challengeCount) external onlyPDPVerifier {
        _dataSet(dataSetId);
        require(challengeCount == CHALLENGES_PER_PROOF, "wrong number of challenges");
        Proving storage state = proving[dataSetId];
        require(state.activationEpoch != 0, "proving not started");
        uint256 period = _periodOf(state, state.challengeEpoch);
        require(block.number < _periodStart(state, period + 1), "proof past the proving deadline");
        require(!state.provenPeriods[period], "already proven this period");
        state.provenPeriods[period] = true;
    }

    // ---- Filecoin Pay validator -----------------------------------------------------------

    /// Pays rate x the epochs of [fromEpoch, toEpoch) that lie in proven periods. Epochs before
    /// activation and of ended unproven periods are settled unpaid; settlement stops at the start
    /// of a period that is still open and unproven (it may yet be proven).
    function validatePayment(uint256 railId, uint256, uint256 fromEpoch, uint256 toEpoch, uint256 rate)
        external
        view
        returns (ValidationResult memory result)
    {
        require(msg.sender == paymentsContractAddress, "only Filecoin Pay");
        Proving storage state = proving[railToDataSet[railId]];
        result.settleUpto = toEpoch;
        if (state.activationEpoch == 0 || toEpoch <= state.activationEpoch) {
            result.note = "proving not started: nothing to pay";
            return result;
        }
        uint256 from = fromEpoch > state.activationEpoch ? fromEpoch : state.activationEpoch;
        for (uint256 period = _periodOf(state, from); _periodStart(state, period) < toEpoch; period++) {
            uint256 start = _periodStart(state, period);
            uint256 end = _periodStart(state, period + 1);
            uint256 lo = start > from ? start : from;
            uint256 hi = end < toEpoch ? end : toEpoch;
            if (state.provenPeriods[period]) {
                result.modifiedAmount += rate * (hi - lo);
            } else if (end > block.number) {
                result.settleUpto = lo; // open and unproven: settle up to here, pay the rest later
                break;
            }
        }
        result.note = "paid proven periods only";
    }

    // ---- views (FWSS StateView subset) --------------------------------------------------

    function viewContractAddress() external view returns (address) {
        return address(this);
    }

    function sessionKeyRegistry() external pure returns (address) {
        return address(0); // devnet: no session keys
    }

    function getDataSet(uint256 dataSetId) external view returns (DataSetInfoView memory info) {
        return dataSets[dataSetId];
    }

    function getClientDataSets(address client) external view returns (DataSetInfoView[] memory infos) {
        uint256[] storage ids = clientSets[client];
        infos = new DataSetInfoView[](ids.length);
        for (uint256 i = 0; i < ids.length; i++) {
            infos[i] = dataSets[ids[i]];
        }
    }

    function clientDataSets(address payer) external view returns (uint256[] memory dataSetIds) {
        return clientSets[payer];
    }

    function getDataSetMetadata(uint256 dataSetId, string calldata key)
        external
        view
        returns (bool exists, string memory value)
    {
        return (dataSetMetadataSet[dataSetId][key], dataSetMetadata[dataSetId][key]);
    }

    function getPDPConfig()
        external
        view
        returns (uint64, uint256 challengeWindow, uint256 challengesPerProof, uint256 initChallengeWindowStart)
    {
        return (uint64(maxProvingPeriod), challengeWindowSize, CHALLENGES_PER_PROOF, maxProvingPeriod - challengeWindowSize);
    }

    function provingActivationEpoch(uint256 dataSetId) external view returns (uint256) {
        return proving[dataSetId].activationEpoch;
    }

    function provenThisPeriod(uint256 dataSetId) external view returns (bool) {
        Proving storage state = proving[dataSetId];
        if (state.activationEpoch == 0 || block.number < state.activationEpoch) return false;
        return state.provenPeriods[_periodOf(state, block.number)];
    }

    function provenPeriod(uint256 dataSetId, uint256 period) external view returns (bool) {
        return proving[dataSetId].provenPeriods[period];
    }

    function getProvingPeriodForEpoch(uint256 dataSetId, uint256 epoch) external view returns (uint256) {
        Proving storage state = proving[dataSetId];
        require(state.activationEpoch != 0 && epoch >= state.activationEpoch, "proving not started at that epoch");
        return _periodOf(state, epoch);
    }

    function eip712Domain()
        external
        view
        returns (bytes1, string memory, string memory, uint256, address, bytes32, uint256[] memory)
    {
        return (hex"0f", "FilecoinWarmStorageService", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---- internals ----------------------------------------------------------------------

    function _emitCreated(DataSetInfoView storage info, CreateExtra memory extra) private {
        emit DataSetCreated(
            info.dataSetId, info.providerId, info.pdpRailId, 0, 0, info.payer, info.serviceProvider, info.payee,
            extra.keys, extra.values
        );
    }

    function _dataSet(uint256 dataSetId) private view returns (DataSetInfoView storage info) {
        info = dataSets[dataSetId];
        require(info.payer != address(0), "data set not managed by this service");
    }

    function _periodOf(Proving storage state, uint256 epoch) private view returns (uint256) {
        return (epoch - state.activationEpoch) / maxProvingPeriod;
    }

    function _periodStart(Proving storage state, uint256 period) private view returns (uint256) {
        return state.activationEpoch + period * maxProvingPeriod;
    }

    function _decodeCreate(bytes calldata extraData) private pure returns (CreateExtra memory extra) {
        (extra.payer, extra.clientDataSetId, extra.keys, extra.values, extra.signature) =
            abi.decode(extraData, (address, uint256, string[], string[], bytes));
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("FilecoinWarmStorageService"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    function _requireSignedBy(bytes32 structHash, bytes memory signature, address payer) private view {
        require(signature.length == 65, "invalid signature length");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(signature, 32))
            s := mload(add(signature, 64))
            v := byte(0, mload(add(signature, 96)))
        }
        require(uint256(s) <= HALF_ORDER && (v == 27 || v == 28), "invalid signature");
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0), "invalid signature");
        require(signer == payer, "signature is not the payer's");
    }

    function _hashMetadata(string[] memory keys, string[] memory values, uint256 limit)
        private
        pure
        returns (bytes32)
    {
        require(keys.length == values.length, "metadata keys and values differ in length");
        require(keys.length <= limit, "too many metadata keys");
        bytes32[] memory hashes = new bytes32[](keys.length);
        for (uint256 i = 0; i < keys.length; i++) {
            require(bytes(keys[i]).length > 0 && bytes(keys[i]).length <= 32, "metadata key length");
            require(bytes(values[i]).length <= 96, "metadata value too long");
            for (uint256 j = 0; j < i; j++) {
                require(keccak256(bytes(keys[i])) != keccak256(bytes(keys[j])), "duplicate metadata key");
            }
            hashes[i] = keccak256(
                abi.encode(METADATA_ENTRY_TYPEHASH, keccak256(bytes(keys[i])), keccak256(bytes(values[i])))
            );
        }
        return keccak256(abi.encodePacked(hashes));
    }

    function _hashCids(Cid[] calldata pieceData) private pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](pieceData.length);
        for (uint256 i = 0; i < pieceData.length; i++) {
            hashes[i] = keccak256(abi.encode(CID_TYPEHASH, keccak256(pieceData[i].data)));
        }
        return keccak256(abi.encodePacked(hashes));
    }

    function _hashPieceMetadata(string[][] memory keys, string[][] memory values) private pure returns (bytes32) {
        bytes32[] memory hashes = new bytes32[](keys.length);
        for (uint256 i = 0; i < keys.length; i++) {
            hashes[i] = keccak256(abi.encode(PIECE_METADATA_TYPEHASH, i, _hashMetadata(keys[i], values[i], 3)));
        }
        return keccak256(abi.encodePacked(hashes));
    }
}
