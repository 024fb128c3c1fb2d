/*
 * mproc.h: the whole public API of mproc, a library that gives C programs on
 * Linux what Python's multiprocessing gives Python programs. Each module has
 * its own header under mproc/; this one includes them all.
 */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/error.h"
#include "mproc/log.h"
#include "mproc/manager.h"
#include "mproc/named.h"
#include "mproc/pool.h"
#include "mproc/process.h"
#include "mproc/queue.h"
#include "mproc/shm.h"
#include "mproc/sync.h"
#include "mproc/conn.h"

#endif
