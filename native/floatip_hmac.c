/*
 * floatip_hmac: HMAC-SHA-256 (RFC 2104, FIPS 180-4) for the heartbeat codec
 * (src/cluster/mac.ts), with the key's two padded blocks hashed once per key instead of once
 * per datagram.
 *
 * Every datagram a node sends or reads carries an HMAC. Node's crypto builds an Hmac object,
 * an OpenSSL context and the key schedule for each: about a tenth of an idle control plane's
 * CPU at lan's 20 rounds a second (perf, 2026-12-05). Here a datagram costs two SHA-256
 * passes from the saved states and nothing else; the code is self-contained (no OpenSSL
 * symbols from the node binary), and its results are checked against Node's crypto and the
 * RFC 4231 vectors (src/cluster/mac.test.ts).
 *
 *   hmacKey(key)                         -> Buffer (opaque: the inner and outer states)
 *   hmacSign(state, data, length, out, offset)
 *                                        -> undefined  the MAC of data[0, length) into
 *                                                      out[offset, offset + 32)
 *   hmacVerify(state, data, length, mac) -> boolean    whether mac (32 bytes) is the MAC of
 *                                                      data[0, length); constant time
 */
#include "floatip_hmac.h"

#include <stdint.h>
#include <string.h>

#define BLOCK 64
#define DIGEST 32

typedef struct {
  uint32_t inner[8];
  uint32_t outer[8];
} hmac_state;

static const uint32_t k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const uint8_t block[BLOCK]) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | (uint32_t)block[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
    uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

/* SHA-256 of `data`, continuing from `start` after `prefix` bytes (whole blocks) hashed. */
static void finish(const uint32_t start[8], uint64_t prefix, const uint8_t* data, size_t length,
                   uint8_t digest[DIGEST]) {
  uint32_t h[8];
  memcpy(h, start, sizeof h);
  size_t at = 0;
  for (; length - at >= BLOCK; at += BLOCK) compress(h, data + at);
  uint8_t tail[2 * BLOCK] = {0};
  size_t rest = length - at;
  memcpy(tail, data + at, rest);
  tail[rest] = 0x80;
  size_t blocks = rest + 1 + 8 <= BLOCK ? 1 : 2;
  uint64_t bits = (prefix + length) * 8;
  for (int i = 0; i < 8; i++) tail[blocks * BLOCK - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t i = 0; i < blocks; i++) compress(h, tail + i * BLOCK);
  for (int i = 0; i < 8; i++) {
    digest[4 * i] = (uint8_t)(h[i] >> 24);
    digest[4 * i + 1] = (uint8_t)(h[i] >> 16);
    digest[4 * i + 2] = (uint8_t)(h[i] >> 8);
    digest[4 * i + 3] = (uint8_t)h[i];
  }
}

static void hmac(const hmac_state* state, const uint8_t* data, size_t length,
                 uint8_t mac[DIGEST]) {
  uint8_t inner[DIGEST];
  finish(state->inner, BLOCK, data, length, inner);
  finish(state->outer, BLOCK, inner, DIGEST, mac);
}

static napi_value hmac_bad_arg(napi_env env, const char* usage) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", usage);
  return NULL;
}

/* A Buffer argument's bytes; NULL (and nothing thrown) when it is not one. */
static uint8_t* buffer_arg(napi_env env, napi_value value, size_t* length) {
  bool is_buffer = false;
  void* data = NULL;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, length) != napi_ok)
    return NULL;
  return data;
}

/* A key state argument (a Buffer of hmacKey's), copied out: a Buffer's bytes need not be
 * aligned for uint32_t (a slice may start anywhere). -1 when it is not one. */
static int state_arg(napi_env env, napi_value value, hmac_state* state) {
  size_t length = 0;
  uint8_t* data = buffer_arg(env, value, &length);
  if (data == NULL || length != sizeof(hmac_state)) return -1;
  memcpy(state, data, sizeof *state);
  return 0;
}

static napi_value js_hmac_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  size_t key_length = 0;
  uint8_t* key = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      (key = buffer_arg(env, argv[0], &key_length)) == NULL)
    return hmac_bad_arg(env, "hmacKey(key: Buffer)");
  uint8_t block[BLOCK] = {0};
  if (key_length > BLOCK) {
    finish(initial, 0, key, key_length, block); /* a longer key is hashed first (RFC 2104) */
  } else {
    memcpy(block, key, key_length);
  }
  napi_value result;
  void* out = NULL;
  if (napi_create_buffer(env, sizeof(hmac_state), &out, &result) != napi_ok)
    return hmac_bad_arg(env, "hmacKey: buffer");
  hmac_state state;
  uint8_t pad[BLOCK];
  for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x36;
  memcpy(state.inner, initial, sizeof initial);
  compress(state.inner, pad);
  for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x5c;
  memcpy(state.outer, initial, sizeof initial);
  compress(state.outer, pad);
  memcpy(out, &state, sizeof state);
  return result;
}

/* state, data and length (at most data's size) of a sign or verify call; -1 when bad. */
static int data_args(napi_env env, napi_value* argv, hmac_state* state, const uint8_t** data,
                     uint32_t* length) {
  size_t size = 0;
  int bad = state_arg(env, argv[0], state);
  *data = buffer_arg(env, argv[1], &size);
  if (bad != 0 || *data == NULL || napi_get_value_uint32(env, argv[2], length) != napi_ok ||
      *length > size)
    return -1;
  return 0;
}

static napi_value js_hmac_sign(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  hmac_state state;
  const uint8_t* data;
  uint32_t length, offset;
  size_t out_size = 0;
  uint8_t* out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
      data_args(env, argv, &state, &data, &length) != 0 ||
      (out = buffer_arg(env, argv[3], &out_size)) == NULL ||
      napi_get_value_uint32(env, argv[4], &offset) != napi_ok || out_size < DIGEST ||
      offset > out_size - DIGEST)
    return hmac_bad_arg(env, "hmacSign(state, data, length, out, offset)");
  uint8_t mac[DIGEST];
  hmac(&state, data, length, mac); /* out may overlap data: computed first, then copied */
  memcpy(out + offset, mac, DIGEST);
  return NULL;
}

static napi_value js_hmac_verify(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  hmac_state state;
  const uint8_t* data;
  uint32_t length;
  size_t mac_size = 0;
  const uint8_t* expected;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      data_args(env, argv, &state, &data, &length) != 0 ||
      (expected = buffer_arg(env, argv[3], &mac_size)) == NULL || mac_size != DIGEST)
    return hmac_bad_arg(env, "hmacVerify(state, data, length, mac)");
  uint8_t mac[DIGEST];
  hmac(&state, data, length, mac);
  uint8_t difference = 0;
  for (int i = 0; i < DIGEST; i++) difference |= (uint8_t)(mac[i] ^ expected[i]);
  napi_value result;
  napi_get_boolean(env, difference == 0, &result);
  return result;
}

napi_status floatip_hmac_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"hmacKey", NULL, js_hmac_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hmacSign", NULL, js_hmac_sign, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hmacVerify", NULL, js_hmac_verify, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                properties);
}
