/*
 * The calling thread's backtrace as text (os/proc.h): glibc's backtrace()
 * for the return addresses, then names from elfutils' libdwfl (every
 * function in the symbol tables, file and line from DWARF) when mproc is
 * built with it (MPROC_HAVE_LIBDW), else from dladdr(3).
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os/proc.h"

#ifdef MPROC_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#endif

#define FRAMES_MAX 64

/* What is known of one frame. */
struct frame {
    const char *func;   /* NULL when unknown */
    uintptr_t func_off; /* pc - the function's start */
    const char *module; /* path of the binary, NULL when unknown */
    uintptr_t mod_off;  /* pc - the module's load address */
    const char *file;   /* source file, NULL when unknown */
    int line;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

/* One line for frame i; the length, or 0 when it does not fit. */
static size_t format_frame(char *buf, size_t size, int i, uintptr_t pc,
                           const struct frame *f)
{
    int n;
    const char *mod = f->module != NULL ? base_name(f->module) : "?";
    if (f->func != NULL && f->file != NULL)
        n = snprintf(buf, size, "#%d %s+0x%" PRIxPTR " at %s:%d (%s)\n", i,
                     f->func, f->func_off, base_name(f->file), f->line, mod);
    else if (f->func != NULL)
        n = snprintf(buf, size, "#%d %s+0x%" PRIxPTR " (%s)\n", i, f->func,
                     f->func_off, mod);
    else if (f->module != NULL)
        n = snprintf(buf, size, "#%d (%s+0x%" PRIxPTR ")\n", i, mod,
                     f->mod_off);
    else
        n = snprintf(buf, size, "#%d 0x%" PRIxPTR "\n", i, pc);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static void from_dladdr(uintptr_t pc, struct frame *f)
{
    Dl_info info;
    /* pc - 1: a return address may lie past the end of its function (a
     * call to a noreturn function is its last instruction). */
    if (dladdr((void *)(pc - 1), &info) == 0)
        return;
    f->module = info.dli_fname;
    f->mod_off = pc - (uintptr_t)info.dli_fbase;
    if (info.dli_sname != NULL && info.dli_saddr != NULL) {
        f->func = info.dli_sname;
        f->func_off = pc - (uintptr_t)info.dli_saddr;
    }
}

#ifdef MPROC_HAVE_LIBDW
/* The standard search for separate debug information (build-id and
 * .gnu_debuglink under /usr/lib/debug), but never through a debuginfod
 * server: a failing process must not wait on the network. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata,
                          const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    const char *urls = getenv("DEBUGINFOD_URLS");
    if (urls != NULL && urls[0] != '\0')
        return -1;
    return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
                                        debuglink_file, debuglink_crc,
                                        debuginfo_file_name);
}

static Dwfl *dwfl_open_self(void)
{
    static const Dwfl_Callbacks cb = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = find_debuginfo,
    };
    Dwfl *d = dwfl_begin(&cb);
    if (d == NULL)
        return NULL;
    if (dwfl_linux_proc_report(d, getpid()) != 0 ||
        dwfl_report_end(d, NULL, NULL) != 0) {
        dwfl_end(d);
        return NULL;
    }
    return d;
}

static void from_dwfl(Dwfl *d, uintptr_t pc, struct frame *f)
{
    Dwarf_Addr at = (Dwarf_Addr)(pc - 1);
    Dwfl_Module *m = dwfl_addrmodule(d, at);
    if (m == NULL)
        return;
    Dwarf_Addr start = 0;
    f->module = dwfl_module_info(m, NULL, &start, NULL, NULL, NULL, NULL, NULL);
    f->mod_off = pc - (uintptr_t)start;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name =
        dwfl_module_addrinfo(m, at, &off, &sym, NULL, NULL, NULL);
    if (name != NULL) {
        f->func = name;
        f->func_off = (uintptr_t)off + 1;
    }
    Dwfl_Line *line = dwfl_module_getsrc(m, at);
    int lineno = 0;
    const char *file =
        line != NULL ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL)
                     : NULL;
    if (file != NULL && lineno > 0) {
        f->file = file;
        f->line = lineno;
    }
}

bool mproc__os_backtrace_symbolizes(void)
{
    return true;
}
#else
bool mproc__os_backtrace_symbolizes(void)
{
    return false;
}
#endif

size_t mproc__os_backtrace(char *buf, size_t size, const void *from)
{
    if (size == 0)
        return 0;
    buf[0] = '\0';
    int saved = errno;
    void *frames[FRAMES_MAX];
    int n = backtrace(frames, FRAMES_MAX);
    int skip = 0;
    while (from != NULL && skip < n && frames[skip] != from)
        skip++;
    if (skip == n)
        skip = 0;
#ifdef MPROC_HAVE_LIBDW
    Dwfl *d = n > skip ? dwfl_open_self() : NULL;
#endif
    size_t len = 0;
    for (int i = skip; i < n; i++) {
        uintptr_t pc = (uintptr_t)frames[i];
        struct frame f = {NULL, 0, NULL, 0, NULL, 0};
#ifdef MPROC_HAVE_LIBDW
        if (d != NULL)
            from_dwfl(d, pc, &f);
#endif
        if (f.module == NULL)
            from_dladdr(pc, &f);
        size_t l = format_frame(buf + len, size - len, i - skip, pc, &f);
        if (l == 0) {
            buf[len] = '\0';
            break;
        }
        len += l;
    }
#ifdef MPROC_HAVE_LIBDW
    if (d != NULL)
        dwfl_end(d);
#endif
    errno = saved;
    return len;
}
