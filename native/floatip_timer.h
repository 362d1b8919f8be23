/*
 * floatip_timer: a libuv timer of its own for the control loop's wake-up (floatip_timer.c).
 * Its exports are added to the floatip_arp addon by its init function, like floatip_udp.
 */
#ifndef FLOATIP_TIMER_H
#define FLOATIP_TIMER_H

#include <node_api.h>

/* Defines timerCreate, timerStart and timerStop on `exports`. */
napi_status floatip_timer_init(napi_env env, napi_value exports);

#endif
