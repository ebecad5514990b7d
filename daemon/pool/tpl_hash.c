/* Reading and hashing a template's sql_dir: pure file work, which the
 * daemon runs off its loop thread (tpl.c's scan). */
#include "tpl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void tpl_free_strv(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static bool file_is_sql(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && strcmp(e->d_name + n - 4, ".sql") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.sql names in dh, sorted; -1 when out of memory. */
static int list_sql(DIR *dh, char ***names_out)
{
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!file_is_sql(e))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) {
                tpl_free_strv(names, n);
                return -1;
            }
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) {
            tpl_free_strv(names, n);
            return -1;
        }
        n++;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_names);
    *names_out = names;
    return n;
}

int tpl_hash_dir(const char *dir, int major, char hex[65], char ***names_out, char ***texts_out,
                 int *n_out, char *err, size_t errlen)
{
    char why[256];
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dh) {
        snprintf(err, errlen, "cannot read sql_dir %s: %s; fix the path or its permissions", dir,
                 strerror_r(errno, why, sizeof why));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char **names = NULL;
    int n = list_sql(dh, &names);
    char **texts = n >= 0 ? calloc((size_t)n + 1, sizeof *texts) : NULL;
    if (!texts) {
        snprintf(err, errlen, "out of memory reading sql_dir %s", dir);
        closedir(dh);
        tpl_free_strv(names, n);
        return -1;
    }
    /* The contents hashed are the contents applied: they are kept, so an
     * edit after hashing makes a new version instead of a mixed one. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t len = 0;
        if (util_read_regular(dirfd(dh), names[i], TPL_MAX_FILE, &texts[i], &len, why, sizeof why) <
            0) {
            snprintf(err, errlen, "%s/%s %s", dir, names[i], why);
            rc = -1;
            break;
        }
        EVP_DigestUpdate(md, names[i], strlen(names[i]) + 1);
        EVP_DigestUpdate(md, texts[i], len + 1);
    }
    closedir(dh);
    char ver[32];
    snprintf(ver, sizeof ver, "postgres %d", major);
    EVP_DigestUpdate(md, ver, strlen(ver));
    unsigned char digest[32];
    EVP_DigestFinal_ex(md, digest, NULL);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (rc < 0) {
        tpl_free_strv(names, n);
        tpl_free_strv(texts, n);
        return -1;
    }
    *names_out = names;
    *texts_out = texts;
    *n_out = n;
    return 0;
}

int tpl_check_sql_dirs(const config_t *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_templates; i++) {
        const tpl_cfg_t *tc = &cfg->templates[i];
        char hex[65], **names = NULL, **texts = NULL, why[768];
        int n = 0;
        if (!tc->sql_dir[0])
            continue;
        if (tpl_hash_dir(tc->sql_dir, 0, hex, &names, &texts, &n, why, sizeof why) < 0) {
            snprintf(err, errlen, "[template.%s] %s", tc->name, why);
            return -1;
        }
        tpl_free_strv(names, n);
        tpl_free_strv(texts, n);
    }
    return 0;
}
