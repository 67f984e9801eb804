/* fuzz_seeds.h: built-in seed inputs of a libFuzzer target, written into a
 * corpus directory at start-up (LLVMFuzzerInitialize runs before libFuzzer
 * reads its corpus directories), so that `ENV=DIR fuzz_x DIR` starts from
 * them. Shared by the targets whose seeds live in their source. */
#ifndef MEMDS_FUZZ_SEEDS_H
#define MEMDS_FUZZ_SEEDS_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct fuzz_seed_t {
    const char *data;
    size_t len;
} fuzz_seed_t;

/* A seed from a string literal (its NUL not included). */
#define FUZZ_SEED(x) \
    { \
        x, sizeof(x) - 1 \
    }
#define FUZZ_NSEEDS(a) (sizeof(a) / sizeof((a)[0]))

/* When the environment variable env names a directory, write seeds[i] to
 * DIR/seed-<name>-NN; a seed that cannot be written aborts the run (a
 * fuzz run without its seeds would pass while testing much less). */
static void fuzz_write_seeds(const char *env, const char *name,
                             const fuzz_seed_t *seeds, size_t n)
{
    const char *dir = getenv(env);
    size_t i;

    for (i = 0; dir != NULL && i < n; i++) {
        char path[4096];
        FILE *f;
        snprintf(path, sizeof(path), "%s/seed-%s-%02u", dir, name, (unsigned)i);
        if ((f = fopen(path, "wb")) == NULL
            || fwrite(seeds[i].data, 1, seeds[i].len, f) != seeds[i].len) {
            fprintf(stderr, "fuzz_%s: cannot write %s\n", name, path);
            abort();
        }
        fclose(f);
    }
}

#endif /* MEMDS_FUZZ_SEEDS_H */
