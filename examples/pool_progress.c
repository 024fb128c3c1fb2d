/*
 * A map over files with a progress bar: 60 files are made in a temporary
 * directory; a pool counts the words of each (the inputs are their paths,
 * of different lengths), and a progress callback, run by the pool's thread
 * as each file is done, draws a bar on stderr when it is a terminal and
 * prints a plain line every 25% when it is not. The outputs come back in
 * input order.
 */
#define _DEFAULT_SOURCE

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

#define FILES 60

static int count_words(const void *in, size_t len, mproc_pool_out *out,
                       void *arg)
{
    (void)arg;
    char path[256];
    if (len == 0 || len >= sizeof path)
        return mproc_pool_fail(MPROC_EINVAL, "bad path length %zu", len);
    memcpy(path, in, len);
    path[len] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return mproc_pool_fail(MPROC_ENOENT, "cannot open %s", path);
    uint64_t words = 0;
    int c, in_word = 0;
    while ((c = fgetc(f)) != EOF) {
        if (isspace(c))
            in_word = 0;
        else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    fclose(f);
    usleep(20000); /* pretend each file is big */
    return mproc_pool_out_write(out, &words, sizeof words);
}

struct bar {
    int tty;
    int last; /* last quarter printed (plain lines) */
};

static int progress(void *ctx, size_t done, size_t total)
{
    struct bar *b = ctx;
    int pct = (int)(done * 100 / total);
    if (b->tty) {
        int fill = pct * 40 / 100;
        fprintf(stderr, "\r[%.*s%*s] %3d%% (%zu/%zu)", fill,
                "########################################", 40 - fill, "", pct,
                done, total);
        if (done == total)
            fputc('\n', stderr);
    } else if (pct / 25 > b->last) {
        b->last = pct / 25;
        fprintf(stderr, "progress: %zu of %zu files (%d%%)\n", done, total,
                pct);
    }
    return 0;
}

int main(void)
{
    char dir[] = "/tmp/mproc-files-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    static char paths[FILES][128];
    mproc_pool_input in[FILES];
    uint64_t want[FILES], got[FILES];
    for (int i = 0; i < FILES; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%0*d.txt", dir, 1 + i % 5, i);
        FILE *f = fopen(paths[i], "w");
        if (f == NULL)
            return 1;
        want[i] = (uint64_t)(i * 7 % 50 + 1);
        for (uint64_t w = 0; w < want[i]; w++)
            fprintf(f, "word%llu%c", (unsigned long long)w,
                    w % 8 == 7 ? '\n' : ' ');
        fclose(f);
        in[i].data = paths[i];
        in[i].len = strlen(paths[i]);
    }

    mproc_pool *pool;
    int rc = mproc_pool_create(&pool, NULL); /* one worker per CPU */
    if (rc != 0) {
        fprintf(stderr, "pool: %s\n", mproc_strerror(rc));
        return 1;
    }
    struct bar b = {isatty(2), 0};
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    co.on_progress = progress;
    co.ctx = &b;
    rc = mproc_pool_map(pool, count_words, NULL, in, 0, FILES, got,
                        sizeof got[0], &co, 60000);
    mproc_pool_close(pool);
    mproc_pool_join(pool, 10000);
    mproc_pool_destroy(pool);

    uint64_t total = 0;
    int ok = rc == 0;
    for (int i = 0; i < FILES; i++) {
        ok = ok && got[i] == want[i];
        total += got[i];
        unlink(paths[i]);
    }
    rmdir(dir);
    printf("map: %s; %d files, %llu words\n", mproc_errname(rc), FILES,
           (unsigned long long)total);
    return ok ? 0 : 1;
}
