// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

struct Cid {
    bytes data;
}

struct Proof {
    bytes32 leaf;
    bytes32[] proof;
}

struct PieceIdAndOffset {
    uint256 pieceId;
    uint256 offset;
}

interface IPDPListener {
    function dataSetCreated(uint256 dataSetId, address serviceProvider, bytes calldata extraData) external;
    function piecesAdded(uint256 dataSetId, uint256 firstAdded, Cid[] calldata pieceData, bytes calldata extraData)
        external;
    function piecesScheduledRemove(uint256 dataSetId, uint256[] calldata pieceIds, bytes calldata extraData) external;
    function possessionProven(uint256 dataSetId, uint256 challengedLeafCount, uint256 seed, uint256 challengeCount)
        external;
    function nextProvingPeriod(uint256 dataSetId, uint256 challengeEpoch, uint256 leafCount, bytes calldata extraData)
        external;
}

/// @title PDPVerifier: devnet subset of the PDP verifier interface (FOC.md section 2).
/// @notice Our own implementation of the public ABI and the published proof rules: the seed is
/// getRandomness(challengeEpoch) from the beacon precompile 0xfE00...0006; challenge i is
/// keccak256(abi.encodePacked(uint256 seed, uint256 setId, uint64 i)) % challengeRange; an index
/// maps to (pieceId, offset) over per-piece leaf counts in pieceId order; a proof is a Merkle path
/// hashed with SHA-256 (precompile 0x02) with the last byte masked by 0x3f. Devnet
/// simplifications: the proof fee is 0 (calculateProofFee), the sybil fee is held, not burned,
/// piece lookup is a linear scan (few pieces per devnet data set), no storage-provider transfer.
contract PDPVerifier {
    uint256 public constant NO_CHALLENGE_SCHEDULED = 0;
    uint256 public constant NO_PROVEN_EPOCH = 0;
    uint256 public constant MAX_ENQUEUED_REMOVALS = 2000;
    address public constant BEACON_RANDOMNESS = 0xfE00000000000000000000000000000000000006;
    uint256 public constant FIL_SYBIL_FEE = 0.1 ether;

    struct DataSet {
        address storageProvider;
        address listener;
        uint256 leafCount;
        uint256 nextPieceId;
        uint256 nextChallengeEpoch;
        uint256 challengeRange;
        uint256 lastProvenEpoch;
        uint256[] scheduledRemovals;
    }

    uint256 private immutable challengeFinality;
    uint256 private nextDataSetId = 1;
    mapping(uint256 => DataSet) private sets;
    mapping(uint256 => mapping(uint256 => bytes)) private pieceCids;
    mapping(uint256 => mapping(uint256 => uint256)) private pieceLeaves;

    event DataSetCreated(uint256 indexed setId, address indexed storageProvider);
    event PiecesAdded(uint256 indexed setId, uint256[] pieceIds, Cid[] pieceCids);
    event PiecesRemoved(uint256 indexed setId, uint256[] pieceIds);
    event NextProvingPeriod(uint256 indexed setId, uint256 challengeEpoch, uint256 leafCount);
    event PossessionProven(uint256 indexed setId, PieceIdAndOffset[] challenges);
    event DataSetEmpty(uint256 indexed setId);

    constructor(uint256 _challengeFinality) {
        challengeFinality = _challengeFinality;
    }

    modifier onlyProvider(uint256 setId) {
        _requireLive(setId);
        require(sets[setId].storageProvider == msg.sender, "only the storage provider");
        _;
    }

    function createDataSet(address listenerAddr, bytes calldata extraData) external payable returns (uint256 setId) {
        require(msg.value >= FIL_SYBIL_FEE, "sybil fee not met");
        setId = nextDataSetId++;
        (sets[setId].storageProvider, sets[setId].listener) = (msg.sender, listenerAddr);
        sets[setId].nextPieceId = 0;
        emit DataSetCreated(setId, msg.sender);
        if (listenerAddr != address(0)) {
            IPDPListener(listenerAddr).dataSetCreated(setId, msg.sender, extraData);
        }
    }

    function addPieces(uint256 setId, address listenerAddr, Cid[] calldata pieceData, bytes calldata extraData)
        external
        payable
        onlyProvider(setId)
        returns (uint256 firstAdded)
    {
        DataSet storage set = sets[setId];
        require(listenerAddr == set.listener, "listener address mismatch");
        require(pieceData.length > 0, "no pieces");
        firstAdded = set.nextPieceId;
        uint256[] memory ids = new uint256[](pieceData.length);
        for (uint256 i = 0; i < pieceData.length; i++) {
            (uint256 leaves,,) = parsePieceCid(pieceData[i].data);
            ids[i] = set.nextPieceId++;
            pieceCids[setId][ids[i]] = pieceData[i].data;
            pieceLeaves[setId][ids[i]] = leaves;
            set.leafCount += leaves;
        }
        emit PiecesAdded(setId, ids, pieceData);
        if (set.listener != address(0)) {
            IPDPListener(set.listener).piecesAdded(setId, firstAdded, pieceData, extraData);
        }
    }

    function schedulePieceDeletions(uint256 setId, uint256[] calldata pieceIds, bytes calldata extraData)
        external
        onlyProvider(setId)
    {
        DataSet storage set = sets[setId];
        require(set.scheduledRemovals.length + pieceIds.length <= MAX_ENQUEUED_REMOVALS, "too many removals queued");
        for (uint256 i = 0; i < pieceIds.length; i++) {
            require(pieceLive(setId, pieceIds[i]), "piece not live");
            set.scheduledRemovals.push(pieceIds[i]);
        }
        if (set.listener != address(0)) {
            IPDPListener(set.listener).piecesScheduledRemove(setId, pieceIds, extraData);
        }
    }

    /// Removals scheduled before now take effect, then the range for the next proof is fixed.
    function nextProvingPeriod(uint256 setId, uint256 challengeEpoch, bytes calldata extraData)
        external
        onlyProvider(setId)
    {
        DataSet storage set = sets[setId];
        _processRemovals(setId, set);
        require(challengeEpoch >= block.number + challengeFinality, "challenge epoch within challenge finality");
        if (set.leafCount == 0) {
            set.nextChallengeEpoch = NO_CHALLENGE_SCHEDULED;
            set.challengeRange = 0;
            emit DataSetEmpty(setId);
        } else {
            set.nextChallengeEpoch = challengeEpoch;
            set.challengeRange = set.leafCount;
            emit NextProvingPeriod(setId, challengeEpoch, set.leafCount);
        }
        if (set.listener != address(0)) {
            IPDPListener(set.listener).nextProvingPeriod(setId, challengeEpoch, set.leafCount, extraData);
        }
    }

    function provePossession(uint256 setId, Proof[] calldata proofs) external payable onlyProvider(setId) {
        DataSet storage set = sets[setId];
        uint256 challengeEpoch = set.nextChallengeEpoch;
        require(challengeEpoch != NO_CHALLENGE_SCHEDULED, "no challenge scheduled");
        require(block.number >= challengeEpoch, "premature proof");
        require(proofs.length > 0, "empty proof");
        uint256 seed = getRandomness(challengeEpoch);
        PieceIdAndOffset[] memory challenges = new PieceIdAndOffset[](proofs.length);
        for (uint64 i = 0; i < proofs.length; i++) {
            uint256 index = computeChallengeIndex(seed, setId, i, set.challengeRange);
            challenges[i] = _findPiece(setId, set.nextPieceId, index);
            (, uint8 height, bytes32 root) = parsePieceCid(pieceCids[setId][challenges[i].pieceId]);
            require(proofs[i].proof.length == height, "proof length does not match the tree height");
            require(merkleRoot(proofs[i].leaf, proofs[i].proof, challenges[i].offset) == root, "proof does not verify");
        }
        set.lastProvenEpoch = block.number;
        emit PossessionProven(setId, challenges);
        if (set.listener != address(0)) {
            IPDPListener(set.listener).possessionProven(setId, set.challengeRange, seed, proofs.length);
        }
    }

    function computeChallengeIndex(uint256 seed, uint256 setId, uint64 i, uint256 challengeRange)
        public
        pure
        returns (uint256)
    {
        require(challengeRange > 0, "empty challenge range");
        return uint256(keccak256(abi.encodePacked(seed, setId, i))) % challengeRange;
    }

    function getRandomness(uint256 epoch) public view returns (uint256) {
        (bool ok, bytes memory out) = BEACON_RANDOMNESS.staticcall(abi.encode(epoch));
        require(ok && out.length == 32, "beacon randomness unavailable");
        return abi.decode(out, (uint256));
    }

    /// Walk from the leaf to the root: an even position hashes (node, sibling), an odd one
    /// (sibling, node); each hash is SHA-256 with the top two bits of its last byte cleared.
    function merkleRoot(bytes32 leaf, bytes32[] calldata path, uint256 position) public view returns (bytes32 node) {
        node = leaf;
        for (uint256 i = 0; i < path.length; i++) {
            node = position % 2 == 0 ? _hashNode(node, path[i]) : _hashNode(path[i], node);
            position >>= 1;
        }
    }

    function _hashNode(bytes32 left, bytes32 right) private view returns (bytes32 out) {
        (bool ok, bytes memory digest) = address(0x02).staticcall(abi.encodePacked(left, right));
        require(ok, "sha256 precompile failed");
        out = bytes32(digest) & ~bytes32(uint256(0xc0)); // last byte & 0x3f
    }

    /// Piece CID v2 (FRC-0069): 0x01 0x55 | multihash 0x1011 (varint 0x91 0x20) | varint digest
    /// length | digest = varint padding | height u8 | root (32 B). Data-bearing leaves (as the
    /// real verifier counts them): 2^height - ((128 * padding / 127) >> 5).
    function parsePieceCid(bytes memory cid) public pure returns (uint256 leaves, uint8 height, bytes32 root) {
        require(cid.length >= 39 && cid.length <= 60, "not a piece CID v2");
        require(uint8(cid[0]) == 0x01 && uint8(cid[1]) == 0x55, "not a piece CID v2");
        require(uint8(cid[2]) == 0x91 && uint8(cid[3]) == 0x20, "not a piece CID v2");
        (uint256 digestLength, uint256 at) = _varint(cid, 4);
        require(at + digestLength == cid.length, "piece CID length mismatch");
        uint256 padding;
        (padding, at) = _varint(cid, at);
        require(at + 33 == cid.length, "piece CID digest malformed");
        height = uint8(cid[at]);
        require(height <= 50, "piece too large");
        assembly {
            root := mload(add(add(cid, 32), add(at, 1)))
        }
        uint256 capacity = uint256(1) << height;
        uint256 paddingLeaves = (128 * padding / 127) >> 5;
        require(paddingLeaves < capacity, "padding leaves no data");
        leaves = capacity - paddingLeaves;
    }

    function _varint(bytes memory data, uint256 at) private pure returns (uint256 value, uint256 next) {
        for (uint256 shift = 0; shift < 63; shift += 7) {
            require(at < data.length, "truncated varint");
            uint8 b = uint8(data[at++]);
            value |= uint256(b & 0x7f) << shift;
            if (b < 0x80) return (value, at);
        }
        revert("varint too long");
    }

    function _findPiece(uint256 setId, uint256 pieceCount, uint256 index)
        private
        view
        returns (PieceIdAndOffset memory)
    {
        for (uint256 pieceId = 0; pieceId < pieceCount; pieceId++) {
            uint256 leaves = pieceLeaves[setId][pieceId];
            if (index < leaves) return PieceIdAndOffset(pieceId, index);
            index -= leaves;
        }
        revert("leaf index out of range");
    }

    function _processRemovals(uint256 setId, DataSet storage set) private {
        uint256[] memory removed = set.scheduledRemovals;
        if (removed.length == 0) return;
        delete set.scheduledRemovals;
        for (uint256 i = 0; i < removed.length; i++) {
            set.leafCount -= pieceLeaves[setId][removed[i]];
            pieceLeaves[setId][removed[i]] = 0; // a removed piece counts 0 leaves from now on
            delete pieceCids[setId][removed[i]];
        }
        emit PiecesRemoved(setId, removed);
    }

    function findPieceIds(uint256 setId, uint256[] calldata leafIndexs)
        external
        view
        returns (PieceIdAndOffset[] memory found)
    {
        found = new PieceIdAndOffset[](leafIndexs.length);
        for (uint256 i = 0; i < leafIndexs.length; i++) {
            found[i] = _findPiece(setId, sets[setId].nextPieceId, leafIndexs[i]);
        }
    }

    function pieceLive(uint256 setId, uint256 pieceId) public view returns (bool) {
        return pieceId < sets[setId].nextPieceId && pieceCids[setId][pieceId].length > 0;
    }

    /// The exact text synapse-core matches (STRING_ERRORS.PDP_VERIFIER_DATA_SET_NOT_LIVE).
    function _requireLive(uint256 setId) private view {
        require(sets[setId].storageProvider != address(0), "Data set not live");
    }

    function dataSetLive(uint256 setId) external view returns (bool) {
        return sets[setId].storageProvider != address(0);
    }

    function getNextChallengeEpoch(uint256 setId) external view returns (uint256) {
        _requireLive(setId);
        return sets[setId].nextChallengeEpoch;
    }

    function getDataSetLastProvenEpoch(uint256 setId) external view returns (uint256) {
        _requireLive(setId);
        return sets[setId].lastProvenEpoch;
    }

    function getChallengeRange(uint256 setId) external view returns (uint256) {
        _requireLive(setId);
        return sets[setId].challengeRange;
    }

    function getDataSetLeafCount(uint256 setId) external view returns (uint256) {
        _requireLive(setId);
        return sets[setId].leafCount;
    }

    function getNextPieceId(uint256 setId) external view returns (uint256) {
        return sets[setId].nextPieceId;
    }

    function getPieceCid(uint256 setId, uint256 pieceId) external view returns (Cid memory) {
        return Cid(pieceCids[setId][pieceId]);
    }

    function getPieceLeafCount(uint256 setId, uint256 pieceId) external view returns (uint256) {
        return pieceLeaves[setId][pieceId];
    }

    function getScheduledRemovals(uint256 setId) external view returns (uint256[] memory) {
        return sets[setId].scheduledRemovals;
    }

    function getDataSetStorageProvider(uint256 setId) external view returns (address, address) {
        return (sets[setId].storageProvider, address(0));
    }

    function getDataSetListener(uint256 setId) external view returns (address) {
        return sets[setId].listener;
    }

    function getChallengeFinality() external view returns (uint256) {
        return challengeFinality;
    }

    function getNextDataSetId() external view returns (uint64) {
        return uint64(nextDataSetId);
    }

    function calculateProofFee(uint256) external pure returns (uint256) {
        return 0; // devnet: no proof fee (the real one is burned through an FVM precompile)
    }
}
