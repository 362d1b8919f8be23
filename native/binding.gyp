{
  "targets": [
    {
      "target_name": "floatip_arp",
      "sources": ["floatip_arp.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
    }
  ]
}
