/*
 * floatip_timer: a one-shot timer on its own libuv handle, re-armable, for the control loop's
 * wake-up (src/adapters/linux/native-timer.ts).
 *
 * Node.js keeps every JavaScript timer on one libuv timer armed for the earliest expiry, and
 * never arms it later when that timer is cleared: the cleared expiry still wakes the process,
 * which finds nothing due and sleeps again. The control loop moves its wake-up later on every
 * round of a follower (the coordinator's heartbeat comes first and the fallback moves on),
 * so with Node's timers each round cost a second wake-up of a sleeping process, the
 * expensive part of a round on a paravirtualised machine. uv_timer_start on a handle of its
 * own re-arms it exactly.
 *
 *   timerCreate(callback)   -> timer (an external; the handle lives as long as the process)
 *   timerStart(timer, ms)   -> undefined   one shot after ms milliseconds, replacing any
 *                                           earlier arming; callback() runs like a Node timer
 *                                           callback (microtasks and nextTicks after it,
 *                                           exceptions to 'uncaughtException')
 *   timerStop(timer)        -> undefined   disarms; stopped, the handle keeps nothing alive
 */
#include "floatip_timer.h"

#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_timer_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
} floatip_timer;

static void on_timer(uv_timer_t* handle) {
  floatip_timer* timer = handle->data;
  napi_env env = timer->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, result;
  if (napi_get_reference_value(env, timer->callback, &callback) == napi_ok && callback != NULL &&
      napi_get_global(env, &receiver) == napi_ok) { /* must be an object */
    napi_status status =
        napi_make_callback(env, timer->context, receiver, callback, 0, NULL, &result);
    if (status == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok)
        napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

static floatip_timer* timer_of(napi_env env, napi_value value) {
  void* data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "floatip_timer: not a timer");
    return NULL;
  }
  return data;
}

static napi_value js_timer_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, name, resource;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "timerCreate(callback): callback must be a function");
    return NULL;
  }
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, "ERR_NAPI", "floatip_timer: no event loop");
    return NULL;
  }
  floatip_timer* timer = calloc(1, sizeof *timer);
  if (timer == NULL) {
    napi_throw_error(env, "ENOMEM", "floatip_timer: out of memory");
    return NULL;
  }
  timer->env = env;
  if (napi_create_string_utf8(env, "floatip.timer", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_async_init(env, resource, name, &timer->context) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &timer->callback) != napi_ok ||
      uv_timer_init(loop, &timer->handle) != 0) {
    /* Not freed: a reference or context may already point at it; this never happens in practice. */
    napi_throw_error(env, "ERR_NAPI", "floatip_timer: cannot create the timer");
    return NULL;
  }
  timer->handle.data = timer;
  /* No finalizer: the control loop keeps its timers for the life of the process. */
  if (napi_create_external(env, timer, NULL, NULL, &result) != napi_ok) return NULL;
  return result;
}

/* The call's `want` arguments into argv, the first one a timer; NULL (thrown) otherwise. */
static floatip_timer* timer_call(napi_env env, napi_callback_info info, size_t want,
                                 napi_value* argv, const char* usage) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", usage);
    return NULL;
  }
  return timer_of(env, argv[0]);
}

static napi_value js_timer_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  floatip_timer* timer = timer_call(env, info, 2, argv, "timerStart(timer, ms)");
  if (timer == NULL) return NULL;
  double ms;
  if (napi_get_value_double(env, argv[1], &ms) != napi_ok || !(ms >= 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "timerStart: ms must be a number >= 0");
    return NULL;
  }
  if (ms > 2147483647.0) ms = 2147483647.0;
  /* From now, not from the loop's cached time (which is as old as the callback running now:
   * counted from it, a wake-up would come that much early and find nothing due). */
  uv_update_time(timer->handle.loop);
  uv_timer_start(&timer->handle, on_timer, (uint64_t)ms, 0);
  return NULL;
}

static napi_value js_timer_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  floatip_timer* timer = timer_call(env, info, 1, argv, "timerStop(timer)");
  if (timer == NULL) return NULL;
  uv_timer_stop(&timer->handle);
  return NULL;
}

napi_status floatip_timer_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"timerCreate", NULL, js_timer_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"timerStart", NULL, js_timer_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"timerStop", NULL, js_timer_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0],
                                properties);
}
