/*
 * Regions: the one mechanism behind every shared object. A region is a
 * shared mapping that starts with a header (magic, version, kind, flags,
 * total size, payload offset, a "ready" word and its creator) followed by
 * the object's payload. Anonymous regions (name NULL) are
 * MAP_SHARED|MAP_ANONYMOUS and reach other processes by fork; named ones
 * live in /dev/shm (mode 0600 unless told) and are opened by unrelated
 * processes. Payloads hold offsets, never pointers.
 *
 * Publication: a named region is built in an unnamed file (O_TMPFILE in
 * /dev/shm; where that is missing, under a temporary name
 * MPROC__REGION_TMP_PREFIX "<pid>-<random>" that nobody can predict):
 * sized, reserved, mapped, header written; the creator fills the payload,
 * stores MPROC__REGION_READY into `ready` with release order, and only then
 * links the file to its real name (EEXIST if that exists). So nothing
 * half-made is ever visible under a real name: an opener finds the name
 * complete or not at all. A creator killed half way leaves nothing (an
 * unnamed file), or a temporary name, which mproc__region_list reports
 * once its creator is gone and mproc__region_unlink removes.
 *
 * A name ending in MPROC__REGION_TEMPLATE ("XXXXXX") is a template: publish
 * replaces those characters with random letters and digits, trying again
 * while the result exists, and r->name holds the result.
 *
 * Opening checks the file's owner and mode against an mproc_access
 * (mproc/named.h) before mapping anything, then the header; it still
 * waits (bounded, MPROC__REGION_OPEN_WAIT_MS) for a file without the ready
 * word, for files made by other means; one that never gets there (or a
 * file that is not ours) is MPROC_EBADOBJ.
 */
#ifndef MPROC_INTERNAL_REGION_H
#define MPROC_INTERNAL_REGION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/named.h"

#define MPROC__REGION_MAGIC 0x3147524f4350524dull /* "MPROCRG1" */
#define MPROC__REGION_VERSION 1u
#define MPROC__REGION_READY 0x52454459u /* "REDY" */
#define MPROC__REGION_HDR 64            /* header bytes; payload offset */
#define MPROC__REGION_OPEN_WAIT_MS 500
#define MPROC__REGION_TMP_PREFIX "/mproc-tmp-" /* then "<pid>-<random>" */
#define MPROC__REGION_TEMPLATE "XXXXXX"        /* a create name ending so */

/* The kinds of object a region can hold. Never renumber: the kind is part
 * of the on-disk format. */
enum mproc__kind {
    MPROC__KIND_ANY = 0, /* for open/unlink: any mproc kind */
    MPROC__KIND_SHM = 1,
    MPROC__KIND_VALUE = 2,
    MPROC__KIND_ARRAY = 3,
    MPROC__KIND_LOCK = 4,
    MPROC__KIND_RLOCK = 5,
    MPROC__KIND_SEMAPHORE = 6,
    MPROC__KIND_BSEMAPHORE = 7,
    MPROC__KIND_EVENT = 8,
    MPROC__KIND_CONDITION = 9,
    MPROC__KIND_BARRIER = 10,
    MPROC__KIND_QUEUE = 11,  /* Queue and SimpleQueue */
    MPROC__KIND_JQUEUE = 12, /* JoinableQueue */
    MPROC__KIND_MAX = 63     /* later kinds below this */
};

/* The header at offset 0 of every region (64 bytes, docs/shared-memory.md). */
typedef struct mproc__region_hdr {
    uint64_t magic;          /* MPROC__REGION_MAGIC */
    _Atomic uint32_t ready;  /* MPROC__REGION_READY once fully made */
    uint32_t version;        /* MPROC__REGION_VERSION */
    uint32_t kind;           /* enum mproc__kind */
    uint32_t flags;          /* kind-specific */
    uint64_t size;           /* total bytes of the mapping */
    uint64_t payload_offset; /* from the start of the region */
    uint64_t payload_size;
    uint32_t creator_pid;   /* the creating process; 0: not recorded */
    uint32_t reserved;      /* 0 */
    uint64_t creator_start; /* its start time (clock ticks since boot), 0 */
} mproc__region_hdr;

/* A process's view of a region (process-local; copied by fork). */
typedef struct mproc__region {
    mproc__region_hdr *hdr; /* start of the mapping */
    void *payload;
    size_t payload_size;
    size_t map_size;
    char *name;     /* malloc'ed copy, NULL when anonymous */
    char *tmp_name; /* until published: the temporary name (malloc'ed) */
    int fd;         /* until published: the unnamed file, else -1 */
    bool templ;     /* name is a template that publish fills in */
} mproc__region;

/*
 * Checks a region name: "/" then 1..NAME_MAX-1 bytes without another '/'.
 * MPROC_EINVAL (NULL, empty, no leading '/', inner '/', "/." and "/..",
 * which name /dev/shm and its parent), MPROC_ENAMETOOLONG.
 */
int mproc__region_name_check(const char *name);

/*
 * Creates a region of kind with payload_size bytes (zeroed), anonymous when
 * name is NULL. mode 0 means 0600 (the umask does not apply); a mode that
 * lets group or others write is made as asked. The header is filled but
 * not published (a named one is an unnamed file or has only its temporary
 * name): the caller initialises the payload and then calls
 * mproc__region_publish, or mproc__region_abandon on failure (which removes
 * the temporary name). Errors: MPROC_EINVAL (payload_size 0, bad kind, mode
 * above 0777, a name starting with MPROC__REGION_TMP_PREFIX), name errors,
 * MPROC_EEXIST (the name exists now; publish checks again; never for a
 * template), MPROC_EAGAIN (no free temporary name in 64 random tries),
 * MPROC_ENOMEM, MPROC_ENOSPC, other -errno. *r is written only on
 * success.
 */
int mproc__region_create(mproc__region *r, const char *name, uint32_t kind,
                         size_t payload_size, unsigned mode);

/* Publishes a created region: release store of the ready word, then (named)
 * links it to its real name (a template: to the first free name it makes)
 * and removes the temporary one. 0, or MPROC_EEXIST (another creator took
 * the name meanwhile; for a template, every name tried existed) or another
 * -errno, after which the caller calls mproc__region_abandon. */
__attribute__((warn_unused_result)) int mproc__region_publish(mproc__region *r);

/* Undoes mproc__region_create: unmaps and unlinks the temporary name (a
 * published region's name is left alone). */
void mproc__region_abandon(mproc__region *r);

/*
 * Opens the named region of kind (MPROC__KIND_ANY: any), accepting its file
 * by the rules of access (NULL: the defaults of mproc/named.h), checked on
 * the open file before anything is mapped. Errors: name errors,
 * MPROC_EINVAL (access lists a count without its array), MPROC_ENOENT,
 * MPROC_EDENIED (owner or mode not accepted), MPROC_EBADOBJ (not an mproc
 * region: a symlink, a directory, another kind of file, a foreign header,
 * another kind of region, too small, never made ready), MPROC_EVERSION,
 * MPROC_EACCES (the file's mode does not let this user open it), -errno.
 * Waits at most MPROC__REGION_OPEN_WAIT_MS for a region being made.
 */
int mproc__region_open(mproc__region *r, const char *name, uint32_t kind,
                       const mproc_access *access);

/* mproc__region_open, then MPROC_EBADOBJ (nothing left open) when the
 * payload is smaller than min_payload bytes, the object's fixed layout. */
int mproc__region_open_sized(mproc__region *r, const char *name, uint32_t kind,
                             size_t min_payload, const mproc_access *access);

/* Unmaps the region and frees the name copy; never unlinks. NULL-safe. */
void mproc__region_close(mproc__region *r);

/*
 * Removes the name of a region of kind (MPROC__KIND_ANY: any mproc kind)
 * after checking its header's magic (and, for a kind, its version and
 * kind), so a file that is not an mproc object of that kind is never
 * removed; a damaged one (truncated, sizes scribbled) is. A temporary name
 * whose creator is gone (a creator killed half way) is removed whatever it
 * holds. Errors: name errors, MPROC_ENOENT, MPROC_EBADOBJ (also a symlink
 * or a file too short to show a magic), MPROC_EVERSION, MPROC_EBUSY (a
 * temporary name whose creator is still alive), -errno. Does not wait for
 * a region being made: its header must already be published.
 */
int mproc__region_unlink(const char *name, uint32_t kind);

/* The state of a listed region. */
enum mproc__region_state {
    MPROC__REGION_OK = 0,
    MPROC__REGION_DAMAGED,   /* header or size does not add up: truncated,
                                scribbled, or never made ready */
    MPROC__REGION_UNFINISHED /* a stale temporary name: creator killed */
};

/* What mproc__region_list tells about one name. */
typedef struct mproc__region_info {
    const char *name; /* with its leading '/'; valid during the call */
    uint32_t kind;    /* MPROC__KIND_ANY when unfinished or unreadable */
    uint32_t version; /* 0 when unfinished or unreadable */
    uint64_t size;    /* the header's size; the file's when unfinished */
    uint64_t file_size;
    uid_t owner;       /* the file's owner */
    pid_t creator;     /* 0: not recorded (an older creator) */
    int creator_alive; /* 1 alive, 0 gone, -1 unknown */
    int state;         /* enum mproc__region_state */
} mproc__region_info;

/*
 * Lists the mproc regions in /dev/shm: calls fn for every name whose
 * header carries mproc's magic (damaged ones too), and for every stale
 * temporary name (its creator gone: a creation killed half way) as
 * MPROC__REGION_UNFINISHED; fn returning non-zero stops the walk and is
 * returned. Files not readable by the caller, and symlinks, are skipped.
 * A creator counts as alive when a process with its pid and start time
 * runs in the caller's pid namespace. Returns 0, fn's value, MPROC_EINVAL
 * (fn NULL), or -errno when /dev/shm cannot be read.
 */
int mproc__region_list(int (*fn)(const mproc__region_info *info, void *arg),
                       void *arg);

/* Test hook: with on, create does without unnamed files (as on a system
 * without O_TMPFILE or /proc) and builds under a temporary name. */
void mproc__region_test_no_tmpfile(bool on);

#endif
