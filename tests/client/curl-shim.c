/* curl-shim.c: LD_PRELOAD library that lets the Debian 12 SyncEvolution
 * client (2.0.0, libsyncevolution.so.0) talk HTTP at all.
 *
 * The defect: SyncEvo::CurlTransportAgent's constructor hands C++ lambda
 * objects to curl_easy_setopt(CURLOPT_WRITEFUNCTION / CURLOPT_READFUNCTION).
 * curl_easy_setopt is variadic; a captureless lambda passed through "..."
 * is an empty class object, not a function pointer, so the compiler loads
 * nothing into the argument register and libcurl receives whatever the
 * register held. The first transfer then calls through that value (or,
 * when it is NULL, fwrite()s onto the agent object) and the client dies
 * before its first SyncML message is sent. CURLOPT_WRITEDATA and
 * CURLOPT_READDATA are set correctly, to the agent itself.
 *
 * The repair: this library defines curl_easy_setopt. When the caller lives
 * in the same shared object as the agent (found through the agent's
 * exported member functions) and sets one of the two callbacks, it puts in
 * a plain C callback that forwards to the member function the lambda was
 * meant to call, CurlTransportAgent::writeData(void *, size_t) or
 * readData(void *, size_t), with the userdata pointer (the agent) as
 * `this`. Every other call goes to libcurl's own curl_easy_setopt with the
 * argument unchanged.
 *
 * x86-64 System V only (one register-sized word per option argument, the
 * Itanium C++ ABI for the member functions); the runner builds it with
 *   cc -shared -fPIC -O2 -o curl-shim.so curl-shim.c -ldl -lpthread
 * No libcurl headers are needed: the two option numbers are fixed by the
 * libcurl ABI (CURLOPTTYPE_FUNCTIONPOINT 20000 + 11 and + 12).
 * MEMDS_CURL_SHIM_DEBUG=1 reports each substitution on stderr. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__x86_64__) || !defined(__linux__)
#error "curl-shim.c is written for x86-64 Linux only"
#endif

/* The agent's member functions, Itanium-mangled:
 * SyncEvo::CurlTransportAgent::writeData(void *, unsigned long) and
 * SyncEvo::CurlTransportAgent::readData(void *, unsigned long). */
#define AGENT_WRITE_DATA "_ZN7SyncEvo18CurlTransportAgent9writeDataEPvm"
#define AGENT_READ_DATA "_ZN7SyncEvo18CurlTransportAgent8readDataEPvm"

enum { SHIM_OPT_WRITEFUNCTION = 20011, SHIM_OPT_READFUNCTION = 20012 };

/* libcurl's curl_easy_setopt, with the argument as one machine word. */
typedef int (*setopt_fn)(void *handle, int option, ...);
/* libcurl's read and write callbacks. */
typedef size_t (*curl_io_fn)(char *buf, size_t size, size_t n, void *userdata);
/* A non-static member function: `this` first. */
typedef size_t (*member_io_fn)(void *agent, void *buf, size_t len);

typedef struct shim_state {
    setopt_fn next_setopt;
    member_io_fn agent_write, agent_read;
    void *agent_object_base; /* load address of libsyncevolution */
    int debug;
} shim_state;

static shim_state shim; /* written once, under shim_once */
static pthread_once_t shim_once = PTHREAD_ONCE_INIT;

/* dlsym's object pointer as a function pointer (POSIX guarantees the
 * conversion; ISO C has no cast for it). */
static void lookup(void *fnp, size_t size, void *handle, const char *name)
{
    void *sym = dlsym(handle, name);

    memcpy(fnp, &sym, size < sizeof(sym) ? size : sizeof(sym));
}

static void shim_resolve(void)
{
    Dl_info info;

    lookup(&shim.next_setopt, sizeof(shim.next_setopt), RTLD_NEXT,
           "curl_easy_setopt");
    lookup(&shim.agent_write, sizeof(shim.agent_write), RTLD_DEFAULT,
           AGENT_WRITE_DATA);
    lookup(&shim.agent_read, sizeof(shim.agent_read), RTLD_DEFAULT,
           AGENT_READ_DATA);
    if (shim.agent_write) {
        void *addr = dlsym(RTLD_DEFAULT, AGENT_WRITE_DATA);
        if (addr && dladdr(addr, &info)) {
            shim.agent_object_base = info.dli_fbase;
        }
    }
    shim.debug = getenv("MEMDS_CURL_SHIM_DEBUG") != NULL;
}

static size_t forward_write(char *buf, size_t size, size_t n, void *agent)
{
    return shim.agent_write(agent, buf, size * n);
}

static size_t forward_read(char *buf, size_t size, size_t n, void *agent)
{
    return shim.agent_read(agent, buf, size * n);
}

/* Is the code at addr part of the shared object that holds the agent? */
static int called_by_agent(const void *addr)
{
    Dl_info info;

    return shim.agent_object_base != NULL && dladdr(addr, &info)
           && info.dli_fbase == shim.agent_object_base;
}

int curl_easy_setopt(void *handle, int option, ...);

int curl_easy_setopt(void *handle, int option, ...)
{
    va_list ap;
    void *arg;
    const void *caller = __builtin_return_address(0);

    pthread_once(&shim_once, shim_resolve);
    va_start(ap, option);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (shim.next_setopt == NULL) {
        return 48; /* CURLE_UNKNOWN_OPTION: no libcurl below us */
    }
    if ((option == SHIM_OPT_WRITEFUNCTION || option == SHIM_OPT_READFUNCTION)
        && called_by_agent(caller)) {
        /* libcurl reads a function pointer for these options */
        curl_io_fn fixed = option == SHIM_OPT_WRITEFUNCTION
                               ? (shim.agent_write ? forward_write : NULL)
                               : (shim.agent_read ? forward_read : NULL);
        if (fixed) {
            if (shim.debug) {
                fprintf(stderr,
                        "curl-shim: option %d from libsyncevolution "
                        "replaced (it was %p)\n",
                        option, arg);
            }
            return shim.next_setopt(handle, option, fixed);
        }
    }
    return shim.next_setopt(handle, option, arg);
}
