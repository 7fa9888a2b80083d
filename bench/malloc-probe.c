/*
 * A bench-only Node-API addon that lets bench/memory-probe.ts ask glibc's allocator what it holds
 * and give free memory back: the in-process evidence that tells "the allocator keeps freed pages"
 * from "something is still allocated". Built on the fly by bench/stream-memory.ts with the system
 * C compiler; the few Node-API declarations it needs are written out here, so no Node headers are
 * needed (the symbols resolve against the node binary when the addon is loaded).
 *
 *   mallinfo() -> { arena, ordblks, hblkhd, uordblks, fordblks, keepcost }  (glibc mallinfo2, bytes,
 *                 summed over all arenas)
 *   info()     -> malloc_info(0) XML (one <heap> per arena)
 *   trim()     -> malloc_trim(0): returns free pages of every arena to the kernel; 1 if any were
 *
 * Under another allocator (LD_PRELOAD=libjemalloc) these still call glibc's, which then holds
 * next to nothing.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

extern napi_status napi_create_object(napi_env env, napi_value *result);
extern napi_status napi_create_double(napi_env env, double value, napi_value *result);
extern napi_status napi_create_int32(napi_env env, int32_t value, napi_value *result);
extern napi_status napi_create_string_utf8(napi_env env, const char *str, size_t length,
                                           napi_value *result);
extern napi_status napi_set_named_property(napi_env env, napi_value object, const char *name,
                                           napi_value value);
extern napi_status napi_create_function(napi_env env, const char *name, size_t length,
                                        napi_callback cb, void *data, napi_value *result);

static void set_number(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

static napi_value js_mallinfo(napi_env env, napi_callback_info info) {
  (void)info;
  struct mallinfo2 mi = mallinfo2();
  napi_value obj;
  napi_create_object(env, &obj);
  set_number(env, obj, "arena", (double)mi.arena);       /* bytes from sbrk/arena heaps */
  set_number(env, obj, "ordblks", (double)mi.ordblks);   /* free chunks */
  set_number(env, obj, "hblkhd", (double)mi.hblkhd);     /* bytes in mmapped chunks */
  set_number(env, obj, "uordblks", (double)mi.uordblks); /* bytes in use */
  set_number(env, obj, "fordblks", (double)mi.fordblks); /* bytes free inside the arenas */
  set_number(env, obj, "keepcost", (double)mi.keepcost); /* trimmable top of the main arena */
  return obj;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  char *buf = NULL;
  size_t len = 0;
  napi_value out;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) {
    napi_create_string_utf8(env, "", 0, &out);
    return out;
  }
  malloc_info(0, f);
  fclose(f);
  napi_create_string_utf8(env, buf, len, &out);
  free(buf);
  return out;
}

static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, malloc_trim(0), &out);
  return out;
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, (size_t)-1, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

int32_t node_api_module_get_api_version_v1(void) { return 8; }

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  export_fn(env, exports, "mallinfo", js_mallinfo);
  export_fn(env, exports, "info", js_info);
  export_fn(env, exports, "trim", js_trim);
  return exports;
}
