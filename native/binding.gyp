{
  "targets": [
    {
      "target_name": "floatip_arp",
      "sources": ["floatip_arp.c", "floatip_ndp.c", "floatip_sys.c", "floatip_tickle.c", "floatip_udp.c", "floatip_timer.c", "floatip_hmac.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lm"]
    },
    {
      "target_name": "floatip-supervisor",
      "type": "executable",
      "sources": ["floatip_supervisor.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    },
    {
      "target_name": "floatip-udpflood",
      "type": "executable",
      "sources": ["floatip_udpflood.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    },
    {
      "target_name": "floatip-hbfloor",
      "type": "executable",
      "sources": ["floatip_hbfloor.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    },
    {
      "target_name": "floatip-arpwatch",
      "type": "executable",
      "sources": ["floatip_arpwatch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
