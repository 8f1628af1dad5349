// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

/// @title ServiceProviderRegistry: devnet subset of the FOC provider registry interface.
/// @notice Our own implementation of the public ABI that the Synapse client and our gateway read:
/// registerProvider with a product's capability keys and values (PDP keys serviceURL,
/// minPieceSizeInBytes, maxPieceSizeInBytes, storagePricePerTibPerDay, minProvingPeriodInEpochs,
/// location, paymentTokenAddress), getProvider, getProviderWithProduct,
/// getProvidersByProductType, getAllActiveProviders and the id lookups. The registration fee is 0
/// on the devnet (the real registry burns 5 FIL through an FVM precompile that anvil lacks).
contract ServiceProviderRegistry {
    uint8 public constant PDP = 0; // ProductType.PDP
    uint256 public constant REGISTRATION_FEE = 0;
    uint256 public constant MAX_CAPABILITIES = 24;
    uint256 public constant MAX_CAPABILITY_KEY_LENGTH = 32;
    uint256 public constant MAX_CAPABILITY_VALUE_LENGTH = 128;

    struct ServiceProviderInfo {
        address serviceProvider;
        address payee;
        string name;
        string description;
        bool isActive;
    }

    struct ServiceProviderInfoView {
        uint256 providerId;
        ServiceProviderInfo info;
    }

    struct ServiceProduct {
        uint8 productType;
        string[] capabilityKeys;
        bool isActive;
    }

    struct ProviderWithProduct {
        uint256 providerId;
        ServiceProviderInfo providerInfo;
        ServiceProduct product;
        bytes[] productCapabilityValues;
    }

    struct PaginatedProviders {
        ProviderWithProduct[] providers;
        bool hasMore;
    }

    mapping(uint256 => ServiceProviderInfo) public providers;
    mapping(uint256 => mapping(uint8 => ServiceProduct)) private products;
    mapping(uint256 => mapping(uint8 => mapping(string => bytes))) public productCapabilities;
    mapping(address => uint256) public addressToProviderId;
    uint256 private providerCount;

    event ProviderRegistered(uint256 indexed providerId, address indexed serviceProvider, address indexed payee);
    event ProductAdded(
        uint256 indexed providerId,
        uint8 indexed productType,
        address serviceProvider,
        string[] capabilityKeys,
        bytes[] capabilityValues
    );

    function registerProvider(
        address payee,
        string calldata name,
        string calldata description,
        uint8 productType,
        string[] calldata capabilityKeys,
        bytes[] calldata capabilityValues
    ) external payable returns (uint256 providerId) {
        require(msg.value == REGISTRATION_FEE, "wrong registration fee");
        require(addressToProviderId[msg.sender] == 0, "provider already registered");
        require(payee != address(0), "payee is the zero address");
        require(bytes(name).length > 0 && bytes(name).length <= 128, "name must be 1..128 bytes");
        require(bytes(description).length <= 256, "description too long");
        require(productType == PDP, "only the PDP product type");
        providerId = ++providerCount;
        providers[providerId] = ServiceProviderInfo(msg.sender, payee, name, description, true);
        addressToProviderId[msg.sender] = providerId;
        _setProduct(providerId, productType, capabilityKeys, capabilityValues);
        emit ProviderRegistered(providerId, msg.sender, payee);
        emit ProductAdded(providerId, productType, msg.sender, capabilityKeys, capabilityValues);
    }

    function _setProduct(uint256 providerId, uint8 productType, string[] calldata keys, bytes[] calldata values)
        private
    {
        require(keys.length == values.length, "keys and values differ in length");
        require(keys.length <= MAX_CAPABILITIES, "too many capabilities");
        bool hasServiceUrl = false;
        for (uint256 i = 0; i < keys.length; i++) {
            bytes memory key = bytes(keys[i]);
            require(key.length > 0 && key.length <= MAX_CAPABILITY_KEY_LENGTH, "capability key length");
            require(values[i].length > 0 && values[i].length <= MAX_CAPABILITY_VALUE_LENGTH, "capability value length");
            require(productCapabilities[providerId][productType][keys[i]].length == 0, "duplicate capability key");
            productCapabilities[providerId][productType][keys[i]] = values[i];
            hasServiceUrl = hasServiceUrl || keccak256(key) == keccak256("serviceURL");
        }
        require(hasServiceUrl, "PDP product needs serviceURL");
        ServiceProduct storage product = products[providerId][productType];
        product.productType = productType;
        for (uint256 i = 0; i < keys.length; i++) {
            product.capabilityKeys.push(keys[i]); // the legacy code generator copies one by one
        }
        product.isActive = true;
    }

    function getProvider(uint256 providerId) external view returns (ServiceProviderInfoView memory info) {
        require(_exists(providerId), "Provider does not exist");
        return ServiceProviderInfoView(providerId, providers[providerId]);
    }

    function getProviderByAddress(address providerAddress) external view returns (ServiceProviderInfoView memory info) {
        uint256 providerId = addressToProviderId[providerAddress];
        return ServiceProviderInfoView(providerId, providers[providerId]);
    }

    function getProviderWithProduct(uint256 providerId, uint8 productType)
        public
        view
        returns (ProviderWithProduct memory)
    {
        require(_exists(providerId), "Provider does not exist");
        ServiceProduct memory product = products[providerId][productType];
        bytes[] memory values = new bytes[](product.capabilityKeys.length);
        for (uint256 i = 0; i < values.length; i++) {
            values[i] = productCapabilities[providerId][productType][product.capabilityKeys[i]];
        }
        return ProviderWithProduct(providerId, providers[providerId], product, values);
    }

    function getProvidersByProductType(uint8 productType, bool onlyActive, uint256 offset, uint256 limit)
        external
        view
        returns (PaginatedProviders memory result)
    {
        uint256[] memory ids = _matching(productType, onlyActive);
        uint256 end = offset + limit < ids.length ? offset + limit : ids.length;
        uint256 count = offset < end ? end - offset : 0;
        result.providers = new ProviderWithProduct[](count);
        for (uint256 i = 0; i < count; i++) {
            result.providers[i] = getProviderWithProduct(ids[offset + i], productType);
        }
        result.hasMore = end < ids.length;
    }

    function getAllActiveProviders(uint256 offset, uint256 limit)
        external
        view
        returns (uint256[] memory providerIds, bool hasMore)
    {
        uint256[] memory ids = _matching(PDP, true);
        uint256 end = offset + limit < ids.length ? offset + limit : ids.length;
        uint256 count = offset < end ? end - offset : 0;
        providerIds = new uint256[](count);
        for (uint256 i = 0; i < count; i++) {
            providerIds[i] = ids[offset + i];
        }
        hasMore = end < ids.length;
    }

    function _matching(uint8 productType, bool onlyActive) private view returns (uint256[] memory ids) {
        ids = new uint256[](providerCount);
        uint256 found = 0;
        for (uint256 id = 1; id <= providerCount; id++) {
            ServiceProduct storage product = products[id][productType];
            if (product.capabilityKeys.length == 0) continue;
            if (onlyActive && !(providers[id].isActive && product.isActive)) continue;
            ids[found++] = id;
        }
        assembly {
            mstore(ids, found) // shrink to the matches: the rest of the array is never read
        }
    }

    function getProviderIdByAddress(address providerAddress) external view returns (uint256) {
        return addressToProviderId[providerAddress];
    }

    function getProviderPayee(uint256 providerId) external view returns (address payee) {
        require(_exists(providerId), "Provider does not exist");
        return providers[providerId].payee;
    }

    function isRegisteredProvider(address provider) external view returns (bool) {
        return addressToProviderId[provider] != 0;
    }

    function isProviderActive(uint256 providerId) external view returns (bool) {
        return providers[providerId].isActive;
    }

    function providerHasProduct(uint256 providerId, uint8 productType) external view returns (bool) {
        return products[providerId][productType].isActive;
    }

    function getProviderCount() external view returns (uint256) {
        return providerCount;
    }

    function activeProviderCount() external view returns (uint256) {
        return providerCount; // providers cannot be removed on the devnet
    }

    function getNextProviderId() external view returns (uint256) {
        return providerCount + 1;
    }

    function _exists(uint256 providerId) private view returns (bool) {
        return providerId != 0 && providerId <= providerCount;
    }
}
