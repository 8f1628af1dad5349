/*
 * gateway.piece._commp_native: the hot loops of commP in C.
 *
 * Fr32 padding (127 input bytes -> four 32-byte leaves of 254 data bits each) and the
 * SHA-256-trunc254 binary tree (every node = sha256(left || right) with the top two bits of its
 * last byte cleared). SHA-256 comes from OpenSSL's libcrypto, which picks SHA-NI on x86-64 and the
 * ARMv8 crypto extensions on aarch64 where the CPU has them.
 *
 * A node hashes exactly 64 bytes, so its SHA-256 is two compressions: the data block and a
 * constant padding block. We lay the pair out next to that padding block and hand both blocks to
 * SHA256_Update at once, reading the state words directly: no SHA256_Final bookkeeping, and one
 * call into OpenSSL's block function per node.
 *
 * The pure-Python reference lives in gateway/piece/_pure.py; tests check the two agree.
 * Every function releases the GIL while hashing.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* the SHA256_* low-level API is deprecated in 3.0, kept */
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#define CHUNK_IN 127
#define CHUNK_OUT 128
#define NODE 32
#define MAX_LEVELS 64

/* The second SHA-256 block of any 64-byte message: 0x80, zeros, bit length 512 big-endian. */
static const unsigned char PAD_BLOCK[64] = {
    0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x00,
};

/* out32 = sha256(in64) with out32[31] &= 0x3f. out32 may alias in64 (the input is copied first).
 * ``block`` is caller scratch whose second half holds PAD_BLOCK: copying the pair next to the padding
 * lets one SHA256_Update run both compressions in a single call into the assembly. */
static inline void node_hash(unsigned char block[128], const unsigned char *in64,
                             unsigned char *out32) {
    SHA256_CTX ctx;
    memcpy(block, in64, 64);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, block, 128);
    for (int i = 0; i < 8; i++) {
        uint32_t h = ctx.h[i];
        out32[4 * i] = (unsigned char)(h >> 24);
        out32[4 * i + 1] = (unsigned char)(h >> 16);
        out32[4 * i + 2] = (unsigned char)(h >> 8);
        out32[4 * i + 3] = (unsigned char)h;
    }
    out32[31] &= 0x3f;
}

#define SCRATCH(name) \
    unsigned char name[128]; \
    memcpy(name + 64, PAD_BLOCK, 64)

/* Fr32: 127 bytes (1016 bits, little-endian bit order) -> 4 x 32 bytes of 254 bits each. */
static inline void fr32_chunk(const unsigned char *in, unsigned char *out) {
    int i;
    memcpy(out, in, 32);
    out[31] &= 0x3f;
    for (i = 0; i < 32; i++) {
        out[32 + i] = (unsigned char)((in[31 + i] >> 6) | (in[32 + i] << 2));
    }
    out[63] &= 0x3f;
    for (i = 0; i < 32; i++) {
        out[64 + i] = (unsigned char)((in[63 + i] >> 4) | (in[64 + i] << 4));
    }
    out[95] &= 0x3f;
    for (i = 0; i < 31; i++) {
        out[96 + i] = (unsigned char)((in[95 + i] >> 2) | (in[96 + i] << 6));
    }
    out[127] = (unsigned char)(in[126] >> 2);
}

/* Root of the level-2 subtree (four leaves) of one 127-byte chunk. */
static inline void chunk_root(unsigned char block[128], const unsigned char *in,
                              unsigned char *out32) {
    unsigned char leaves[CHUNK_OUT];
    fr32_chunk(in, leaves);
    node_hash(block, leaves, leaves);           /* leaves[0:32]  = H(l0, l1) */
    node_hash(block, leaves + 64, leaves + 32); /* leaves[32:64] = H(l2, l3) */
    node_hash(block, leaves, out32);
}

static PyObject *fr32_pad(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "y*:fr32_pad", &in)) {
        return NULL;
    }
    if (in.len % CHUNK_IN != 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "fr32_pad: length must be a multiple of 127");
        return NULL;
    }
    Py_ssize_t chunks = in.len / CHUNK_IN;
    PyObject *result = PyBytes_FromStringAndSize(NULL, chunks * CHUNK_OUT);
    if (result == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)in.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < chunks; k++) {
        fr32_chunk(src + k * CHUNK_IN, dst + k * CHUNK_OUT);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    return result;
}

static PyObject *subtree_root(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "y*:subtree_root", &in)) {
        return NULL;
    }
    Py_ssize_t chunks = in.len / CHUNK_IN;
    if (in.len % CHUNK_IN != 0 || chunks == 0 || (chunks & (chunks - 1)) != 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError,
                        "subtree_root: length must be 127 times a power of two");
        return NULL;
    }
    /* Binary counter of pending left nodes, one slot per level above the chunk roots. */
    unsigned char stack[MAX_LEVELS][2 * NODE];
    int filled[MAX_LEVELS];
    unsigned char node[NODE];
    SCRATCH(block);
    memset(filled, 0, sizeof filled);
    const unsigned char *src = (const unsigned char *)in.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < chunks; k++) {
        chunk_root(block, src + k * CHUNK_IN, node);
        int level = 0;
        while (filled[level]) {
            memcpy(stack[level] + NODE, node, NODE);
            node_hash(block, stack[level], node);
            filled[level] = 0;
            level++;
        }
        memcpy(stack[level], node, NODE);
        filled[level] = 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    /* chunks is a power of two, so exactly one slot is filled: the root. */
    for (int level = 0; level < MAX_LEVELS; level++) {
        if (filled[level]) {
            return PyBytes_FromStringAndSize((const char *)stack[level], NODE);
        }
    }
    PyErr_SetString(PyExc_RuntimeError, "subtree_root: no root (unreachable)");
    return NULL;
}

static PyObject *hash_layer(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer in;
    if (!PyArg_ParseTuple(args, "y*:hash_layer", &in)) {
        return NULL;
    }
    if (in.len % (2 * NODE) != 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "hash_layer: length must be a multiple of 64");
        return NULL;
    }
    Py_ssize_t pairs = in.len / (2 * NODE);
    PyObject *result = PyBytes_FromStringAndSize(NULL, pairs * NODE);
    if (result == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    const unsigned char *src = (const unsigned char *)in.buf;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
    SCRATCH(block);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < pairs; k++) {
        node_hash(block, src + k * 2 * NODE, dst + k * NODE);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    return result;
}

static PyMethodDef methods[] = {
    {"fr32_pad", fr32_pad, METH_VARARGS,
     "fr32_pad(data) -> bytes: Fr32-pad data whose length is a multiple of 127."},
    {"subtree_root", subtree_root, METH_VARARGS,
     "subtree_root(data) -> bytes: root over Fr32(data); len(data) = 127 * 2**k."},
    {"hash_layer", hash_layer, METH_VARARGS,
     "hash_layer(nodes) -> bytes: the parent layer of 32-byte nodes (length a multiple of 64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_commp_native",
    .m_doc = "commP hot loops: Fr32 padding and the SHA-256-trunc254 tree (OpenSSL libcrypto).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__commp_native(void) { return PyModule_Create(&module); }
