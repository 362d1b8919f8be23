/*
 * floatip_udp: a UDP socket the control plane reads on its own tick (floatip_udp.c). libuv
 * never sees it, so a peer's datagram wakes nobody; the control loop drains it before each
 * tick. Its exports are added to the floatip_arp addon by its init function, like floatip_sys.
 */
#ifndef FLOATIP_UDP_H
#define FLOATIP_UDP_H

#include <node_api.h>

/* Defines udpOpen, udpSend, udpDrain, udpRecvBufferBytes and udpClose on `exports`. */
napi_status floatip_udp_init(napi_env env, napi_value exports);

#endif
