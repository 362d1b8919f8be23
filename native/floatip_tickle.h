/*
 * floatip_tickle: TCP tickle ACKs after a VIP takeover (floatip_tickle.c). Its export is
 * added to the floatip_arp addon by its init function, like floatip_sys.
 */
#ifndef FLOATIP_TICKLE_H
#define FLOATIP_TICKLE_H

#include <node_api.h>

/* Defines tcpTickle on `exports`. */
napi_status floatip_tickle_init(napi_env env, napi_value exports);

#endif
