// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

interface IERC20Like {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function transfer(address to, uint256 value) external returns (bool);
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;
}

/// Result a rail's validator returns from validatePayment (Filecoin Pay IValidator shape).
struct ValidationResult {
    uint256 modifiedAmount;
    uint256 settleUpto;
    string note;
}

interface IValidator {
    function validatePayment(uint256 railId, uint256 proposedAmount, uint256 fromEpoch, uint256 toEpoch, uint256 rate)
        external
        returns (ValidationResult memory result);
}

/// @title FilecoinPay: devnet subset of the Filecoin Pay (FilecoinPayV1) interface.
/// @notice Our own small implementation of the public ABI: accounts, deposits (plain and with an
/// EIP-2612 permit), operator approvals with allowances, rails created by an approved operator,
/// fixed lockup, and settlement that pays what the rail's validator approves (FWSS: proven
/// periods only). Simplifications, on purpose: lockup is the sum of the rails' lockups (no
/// streaming lockup accounting), no rate-change queue, no network fee and no burn (the devnet
/// has no FVM burn actor), no rail termination.
contract FilecoinPay {
    struct Account {
        uint256 funds;
        uint256 lockupCurrent;
        uint256 lockupRate;
        uint256 lockupLastSettledAt;
    }

    struct OperatorApproval {
        bool isApproved;
        uint256 rateAllowance;
        uint256 lockupAllowance;
        uint256 rateUsage;
        uint256 lockupUsage;
        uint256 maxLockupPeriod;
    }

    struct RailView {
        address token;
        address from;
        address to;
        address operator;
        address validator;
        uint256 paymentRate;
        uint256 lockupPeriod;
        uint256 lockupFixed;
        uint256 settledUpTo;
        uint256 endEpoch;
        uint256 commissionRateBps;
        address serviceFeeRecipient;
    }

    mapping(address => mapping(address => Account)) public accounts;
    mapping(address => mapping(address => mapping(address => OperatorApproval))) public operatorApprovals;
    mapping(uint256 => RailView) private rails;
    uint256 public nextRailId = 1;

    event DepositRecorded(address indexed token, address indexed from, address indexed to, uint256 amount);
    event WithdrawRecorded(address indexed token, address indexed from, address indexed to, uint256 amount);
    event OperatorApprovalUpdated(
        address indexed token,
        address indexed client,
        address indexed operator,
        bool approved,
        uint256 rateAllowance,
        uint256 lockupAllowance,
        uint256 maxLockupPeriod
    );
    event RailCreated(
        uint256 indexed railId,
        address indexed payer,
        address indexed payee,
        address token,
        address operator,
        address validator,
        address serviceFeeRecipient,
        uint256 commissionRateBps
    );
    event RailSettled(
        uint256 indexed railId,
        uint256 totalSettledAmount,
        uint256 totalNetPayeeAmount,
        uint256 operatorCommission,
        uint256 networkFee,
        uint256 settledUpTo
    );

    function deposit(address token, address to, uint256 amount) external payable {
        require(msg.value == 0 && token != address(0), "devnet: ERC-20 deposits only");
        _pull(token, msg.sender, to, amount);
    }

    function depositWithPermit(
        address token,
        address to,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _permitAndPull(token, to, amount, deadline, v, r, s);
    }

    function depositWithPermitAndApproveOperator(
        address token,
        address to,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s,
        address operator,
        uint256 rateAllowance,
        uint256 lockupAllowance,
        uint256 maxLockupPeriod
    ) external {
        _permitAndPull(token, to, amount, deadline, v, r, s);
        _approve(token, to, operator, true, rateAllowance, lockupAllowance, maxLockupPeriod);
    }

    function setOperatorApproval(
        address token,
        address operator,
        bool approved,
        uint256 rateAllowance,
        uint256 lockupAllowance,
        uint256 maxLockupPeriod
    ) external {
        _approve(token, msg.sender, operator, approved, rateAllowance, lockupAllowance, maxLockupPeriod);
    }

    function withdraw(address token, uint256 amount) external {
        Account storage account = accounts[token][msg.sender];
        require(account.funds - account.lockupCurrent >= amount, "insufficient unlocked funds");
        account.funds -= amount;
        require(IERC20Like(token).transfer(msg.sender, amount), "token transfer failed");
        emit WithdrawRecorded(token, msg.sender, msg.sender, amount);
    }

    function createRail(
        address token,
        address from,
        address to,
        address validator,
        uint256 commissionRateBps,
        address serviceFeeRecipient
    ) external returns (uint256 railId) {
        require(operatorApprovals[token][from][msg.sender].isApproved, "operator not approved by payer");
        require(commissionRateBps == 0, "devnet: no commission");
        railId = nextRailId++;
        RailView storage rail = rails[railId];
        (rail.token, rail.from, rail.to, rail.operator) = (token, from, to, msg.sender);
        (rail.validator, rail.serviceFeeRecipient) = (validator, serviceFeeRecipient);
        rail.settledUpTo = block.number;
        emit RailCreated(railId, from, to, token, msg.sender, validator, serviceFeeRecipient, 0);
    }

    function modifyRailPayment(uint256 railId, uint256 newRate, uint256 oneTimePayment) external {
        RailView storage rail = _operatorRail(railId);
        require(oneTimePayment == 0, "devnet: no one-time payments");
        OperatorApproval storage approval = operatorApprovals[rail.token][rail.from][msg.sender];
        approval.rateUsage = approval.rateUsage - rail.paymentRate + newRate;
        require(approval.rateUsage <= approval.rateAllowance, "rate allowance exceeded");
        _setLockup(rail, newRate, rail.lockupPeriod, rail.lockupFixed);
        accounts[rail.token][rail.from].lockupRate = accounts[rail.token][rail.from].lockupRate - rail.paymentRate + newRate;
        rail.paymentRate = newRate;
    }

    function modifyRailLockup(uint256 railId, uint256 period, uint256 lockupFixed) external {
        RailView storage rail = _operatorRail(railId);
        OperatorApproval storage approval = operatorApprovals[rail.token][rail.from][msg.sender];
        require(period <= approval.maxLockupPeriod, "lockup period above the payer's maximum");
        _setLockup(rail, rail.paymentRate, period, lockupFixed);
        (rail.lockupPeriod, rail.lockupFixed) = (period, lockupFixed);
    }

    function getRail(uint256 railId) external view returns (RailView memory) {
        require(rails[railId].from != address(0), "rail does not exist");
        return rails[railId];
    }

    /// Pays the rail from settledUpTo to untilEpoch, as far as the validator allows: with FWSS as
    /// validator, only epochs of proven proving periods are paid, so an unproven period pays zero.
    function settleRail(uint256 railId, uint256 untilEpoch)
        external
        returns (
            uint256 totalSettledAmount,
            uint256 totalNetPayeeAmount,
            uint256 totalOperatorCommission,
            uint256 totalNetworkFee,
            uint256 finalSettledEpoch,
            string memory note
        )
    {
        RailView storage rail = rails[railId];
        require(rail.from != address(0), "rail does not exist");
        require(untilEpoch <= block.number, "cannot settle future epochs");
        require(untilEpoch >= rail.settledUpTo, "already settled past that epoch");
        uint256 proposed = rail.paymentRate * (untilEpoch - rail.settledUpTo);
        (totalSettledAmount, finalSettledEpoch, note) = (proposed, untilEpoch, "");
        if (rail.validator != address(0)) {
            ValidationResult memory result = IValidator(rail.validator).validatePayment(
                railId, proposed, rail.settledUpTo, untilEpoch, rail.paymentRate
            );
            require(result.modifiedAmount <= proposed, "validator paid more than proposed");
            require(result.settleUpto >= rail.settledUpTo && result.settleUpto <= untilEpoch, "validator epoch out of range");
            (totalSettledAmount, finalSettledEpoch, note) = (result.modifiedAmount, result.settleUpto, result.note);
        }
        Account storage payer = accounts[rail.token][rail.from];
        require(payer.funds >= totalSettledAmount, "payer funds too low");
        payer.funds -= totalSettledAmount;
        accounts[rail.token][rail.to].funds += totalSettledAmount;
        rail.settledUpTo = finalSettledEpoch;
        totalNetPayeeAmount = totalSettledAmount;
        (totalOperatorCommission, totalNetworkFee) = (0, 0);
        emit RailSettled(railId, totalSettledAmount, totalSettledAmount, 0, 0, finalSettledEpoch);
    }

    function _operatorRail(uint256 railId) private view returns (RailView storage rail) {
        rail = rails[railId];
        require(rail.from != address(0), "rail does not exist");
        require(rail.operator == msg.sender, "only the rail operator");
    }

    /// A rail locks rate * period + fixed of the payer's funds; the operator's lockup allowance
    /// bounds the sum over its rails, and the payer's funds must cover every rail's lockup.
    function _setLockup(RailView storage rail, uint256 rate, uint256 period, uint256 lockupFixed) private {
        uint256 oldLockup = rail.paymentRate * rail.lockupPeriod + rail.lockupFixed;
        uint256 newLockup = rate * period + lockupFixed;
        OperatorApproval storage approval = operatorApprovals[rail.token][rail.from][rail.operator];
        approval.lockupUsage = approval.lockupUsage - oldLockup + newLockup;
        require(approval.lockupUsage <= approval.lockupAllowance, "lockup allowance exceeded");
        Account storage payer = accounts[rail.token][rail.from];
        payer.lockupCurrent = payer.lockupCurrent - oldLockup + newLockup;
        payer.lockupLastSettledAt = block.number;
        require(payer.lockupCurrent <= payer.funds, "payer funds do not cover the lockup");
    }

    function _approve(
        address token,
        address client,
        address operator,
        bool approved,
        uint256 rateAllowance,
        uint256 lockupAllowance,
        uint256 maxLockupPeriod
    ) private {
        require(operator != address(0), "operator is the zero address");
        OperatorApproval storage approval = operatorApprovals[token][client][operator];
        approval.isApproved = approved;
        (approval.rateAllowance, approval.lockupAllowance) = (rateAllowance, lockupAllowance);
        approval.maxLockupPeriod = maxLockupPeriod;
        emit OperatorApprovalUpdated(token, client, operator, approved, rateAllowance, lockupAllowance, maxLockupPeriod);
    }

    function _permitAndPull(
        address token,
        address to,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        // The permit is the owner's consent to move its tokens; the operator approval that may
        // follow changes its account too, so only the owner itself may send this call.
        require(msg.sender == to, "permit deposits only into the signer's own account");
        IERC20Like(token).permit(to, address(this), amount, deadline, v, r, s);
        _pull(token, to, to, amount);
    }

    function _pull(address token, address from, address to, uint256 amount) private {
        require(to != address(0), "deposit to the zero address");
        require(IERC20Like(token).transferFrom(from, address(this), amount), "token transfer failed");
        accounts[token][to].funds += amount;
        emit DepositRecorded(token, from, to, amount);
    }
}
