/*
 * floatip_hmac: HMAC-SHA-256 of the heartbeat codec with the key schedule done once
 * (floatip_hmac.c). Its exports are added to the floatip_arp addon by its init function.
 */
#ifndef FLOATIP_HMAC_H
#define FLOATIP_HMAC_H

#include <node_api.h>

/* Defines hmacKey, hmacSign and hmacVerify on `exports`. */
napi_status floatip_hmac_init(napi_env env, napi_value exports);

#endif
