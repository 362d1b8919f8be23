/*
 * floatip_sys: realtime scheduling, memory locking and rtnetlink address calls, all
 * synchronous. Implemented in floatip_sys.c; the exports are added to the floatip_arp addon
 * by its init function so that there is still one .node file to build and load.
 */
#ifndef FLOATIP_SYS_H
#define FLOATIP_SYS_H

#include <node_api.h>

/* Defines setRealtime, setRealtimeCpuLimit, lockMemory, lockMappedFiles, currentScheduling,
 * listAddresses and renewAddressLifetime on `exports`. */
napi_status floatip_sys_init(napi_env env, napi_value exports);

#endif
