/*
 * difftest.c - random-operation differential tester for custodyfs.
 *
 * Usage:
 *   difftest [--ops N] [--seed S] [--max-size BYTES] [--no-mmap] [--verbose]
 *            TESTFILE REFFILE
 *
 * TESTFILE is a path inside the mounted file system under test, REFFILE a
 * path on a plain local disk.  Both are created (or truncated) fresh, then
 * N random operations (default 100000) are applied identically to both, and
 * the two files must never differ.  Operations:
 *
 *   pwrite    random data at offsets skewed toward 4 KiB block boundaries
 *             (+-k), toward EOF and past EOF (holes that must read as zeros);
 *             sizes of 1 byte, 1-64 bytes, 4096/8192 +-k, up to 64 KiB and
 *             occasionally up to 1 MiB.  Data is random, zeros or one byte.
 *   pread     random range, also past and straddling EOF; the return value
 *             of a single pread() and the bytes must match.
 *   truncate  ftruncate to 0, shrink, grow (hole), block boundary +-k.
 *   append    write() through a second descriptor opened with O_APPEND;
 *             the resulting file offsets must match too.
 *   mmap      map [0, size) MAP_SHARED read/write on both files, then either
 *             compare a range through the maps, or store random bytes into
 *             both maps, msync(MS_SYNC), munmap and check with pread.
 *   fsync     fsync() or fdatasync().
 *   reopen    fsync, drop cached pages (POSIX_FADV_DONTNEED), close and reopen
 *             both descriptors, so data must come back through the file system.
 *   stat      fstat() and stat() by path: all sizes must agree.
 *
 * After every step the sizes are compared (fstat) together with the region
 * around the range the step touched; every 500 steps and at the end both
 * files are compared in full.  The file is kept below --max-size (default
 * 4 MiB; suffixes K, M, G accepted), except for a few sparse writes that
 * land up to 1 MiB past it and are cut back by later truncates.
 *
 * Output and exit status:
 *   The first line is always "difftest: seed S".  On success a summary line
 *   is printed and the exit status is 0.  On the first difference the seed,
 *   the step, the recent operations with their offsets and sizes, the first
 *   differing offset and the bytes around it on both sides are printed to
 *   stderr, and the exit status is 1.  Any failing system call (or a short
 *   write) is reported with the call, the file, errno, the seed and the step,
 *   and the exit status is 2.
 *
 * Replaying a failure:
 *   All choices and all written data come from one xoshiro256** generator
 *   seeded from S, and they depend only on S, --max-size, --no-mmap and the
 *   reference file, so a run replays exactly.  The failure report prints a
 *   ready-made command; in general run
 *       difftest --seed S --ops STEP [same --max-size / --no-mmap] TEST REF
 *   where STEP is the failing step number, optionally with --verbose to log
 *   every operation.  Both files are left in place after the run.
 *
 * Build:
 *   gcc -std=c17 -Wall -Wextra -Werror -O2 -D_GNU_SOURCE \
 *       -o difftest tests/difftest/difftest.c
 */
#define _FILE_OFFSET_BITS 64
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)
#define BLK ((off_t)4096)
#define BUF_SIZE (MIB + 64 * KIB) /* largest single I/O is 1 MiB + 16 */
#define CHUNK MIB                 /* full-compare read size */
#define EDGE (64 * KIB)           /* per-step check: bytes per edge */
#define FULL_EVERY 500            /* steps between full compares */
#define HISTORY 8                 /* recent ops shown on failure */
#define DESC_LEN 160
#define DUMP_CTX 8                /* bytes shown either side of a diff */

enum side { TEST, REF };
static const char *const side_name[2] = { "test", "ref" };

struct file {
	const char *path;
	int fd;  /* O_RDWR, used with pread/pwrite/ftruncate/mmap */
	int afd; /* O_WRONLY | O_APPEND */
};

struct counters {
	uint64_t writes, reads, truncates, mmaps, appends, reopens, fsyncs,
		stats;
};

struct state {
	uint64_t rng[4];
	uint64_t seed, nops, step;
	off_t max_size;
	bool use_mmap, verbose;
	struct file f[2];
	off_t size;   /* current size, from fstat of the reference file */
	off_t lo, hi; /* range touched by the current step */
	char hist[HISTORY][DESC_LEN];
	unsigned char *wbuf, *rbuf[2];
	struct counters n;
};

/* ------------------------------------------------------------------ */
/* Failure reporting                                                   */
/* ------------------------------------------------------------------ */

static const char *cur_desc(const struct state *st)
{
	return st->hist[st->step % HISTORY];
}

static void print_context(const struct state *st)
{
	fprintf(stderr, "  seed %" PRIu64 ", step %" PRIu64 "\n", st->seed,
		st->step);
	fprintf(stderr, "  op: %s\n", cur_desc(st));
	if (st->step == 0)
		return; /* failed during setup: no ops ran yet */
	fprintf(stderr, "  recent ops (oldest first):\n");
	uint64_t first = st->step >= HISTORY ? st->step - HISTORY + 1 : 1;
	for (uint64_t s = first; s <= st->step; s++)
		fprintf(stderr, "    step %" PRIu64 ": %s\n", s,
			st->hist[s % HISTORY]);
	fprintf(stderr,
		"  replay: difftest --seed %" PRIu64 " --ops %" PRIu64
		" --max-size %jd%s %s %s\n",
		st->seed, st->step, (intmax_t)st->max_size,
		st->use_mmap ? "" : " --no-mmap", st->f[TEST].path,
		st->f[REF].path);
}

/* A system call failed: errno is still set.  Exit status 2. */
static void die_sys(const struct state *st, const char *call, int side)
{
	int e = errno;

	fflush(stdout);
	fprintf(stderr, "difftest: ERROR: %s on %s file %s failed: %s\n", call,
		side_name[side], st->f[side].path, strerror(e));
	print_context(st);
	exit(2);
}

/* A failure without errno (e.g. a short write).  Exit status 2. */
static void die_msg(const struct state *st, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("difftest: ERROR: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_context(st);
	exit(2);
}

static void dump_bytes(const char *label, const unsigned char *buf, size_t n,
		       size_t from, size_t to, size_t mark)
{
	fprintf(stderr, "    %-8s", label);
	for (size_t i = from; i < to; i++) {
		const char *l = i == mark ? "[" : " ";
		const char *r = i == mark ? "]" : "";
		if (i < n)
			fprintf(stderr, "%s%02x%s", l, buf[i], r);
		else
			fprintf(stderr, "%s--%s", l, r); /* past EOF */
	}
	fputc('\n', stderr);
}

static size_t first_diff(const unsigned char *a, size_t na,
			 const unsigned char *b, size_t nb)
{
	size_t n = na < nb ? na : nb;

	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return i;
	return n;
}

/*
 * Byte contents differ: buffers a (na bytes) and b (nb bytes) were read
 * from file offset base.  Exit status 1.
 */
static void report_bytes(const struct state *st, const char *what, off_t base,
			 const unsigned char *a, size_t na, const char *la,
			 const unsigned char *b, size_t nb, const char *lb)
{
	size_t i = first_diff(a, na, b, nb);
	size_t from = i > DUMP_CTX ? i - DUMP_CTX : 0;
	size_t to = i + DUMP_CTX + 1;

	fflush(stdout);
	fprintf(stderr, "difftest: MISMATCH: %s\n", what);
	print_context(st);
	fprintf(stderr,
		"  range checked: offset %jd, %s has %zu bytes, %s has %zu bytes\n",
		(intmax_t)base, la, na, lb, nb);
	fprintf(stderr, "  first differing offset: %jd (0x%jx)\n",
		(intmax_t)(base + (off_t)i), (uintmax_t)(base + (off_t)i));
	fprintf(stderr, "  bytes from offset %jd (\"--\" = not returned):\n",
		(intmax_t)(base + (off_t)from));
	dump_bytes(la, a, na, from, to, i);
	dump_bytes(lb, b, nb, from, to, i);
	exit(1);
}

/* Two numbers (sizes, return values, offsets) differ.  Exit status 1. */
static void report_values(const struct state *st, const char *what,
			  intmax_t test, intmax_t ref)
{
	fflush(stdout);
	fprintf(stderr, "difftest: MISMATCH: %s: test %jd, ref %jd\n", what,
		test, ref);
	print_context(st);
	exit(1);
}

/* ------------------------------------------------------------------ */
/* Deterministic PRNG: splitmix64 seeding xoshiro256**                 */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static void rng_seed(struct state *st, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		st->rng[i] = splitmix64(&x);
}

static uint64_t rng_next(struct state *st)
{
	uint64_t *s = st->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n); 0 when n == 0.  Modulo bias is negligible here. */
static uint64_t rnd(struct state *st, uint64_t n)
{
	return n ? rng_next(st) % n : 0;
}

/* Uniform in [-k, k]. */
static int64_t jitter(struct state *st, int64_t k)
{
	return (int64_t)rnd(st, (uint64_t)(2 * k + 1)) - k;
}

/* Half the time exactly 0, otherwise a small +-k around a boundary. */
static int64_t block_jitter(struct state *st)
{
	return rnd(st, 2) ? 0 : jitter(st, 16);
}

/* Write data: mostly random, sometimes all zeros or one repeated byte. */
static void fill_data(struct state *st, unsigned char *buf, size_t len)
{
	uint64_t kind = rnd(st, 20);

	if (kind == 0) {
		memset(buf, 0, len);
		return;
	}
	if (kind == 1) {
		memset(buf, (int)rnd(st, 256), len);
		return;
	}
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(st);
		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* ------------------------------------------------------------------ */
/* Offsets and sizes                                                   */
/* ------------------------------------------------------------------ */

static off_t clamp0(off_t v)
{
	return v < 0 ? 0 : v;
}

/* A 4 KiB boundary +-k at or below limit. */
static off_t near_block(struct state *st, off_t limit)
{
	uint64_t blocks = (uint64_t)(limit / BLK) + 1;

	return clamp0((off_t)rnd(st, blocks) * BLK + block_jitter(st));
}

static off_t pick_offset(struct state *st)
{
	uint64_t r = rnd(st, 100);

	if (r < 30)
		return near_block(st, st->size + 2 * BLK);
	if (r < 50)
		return clamp0(st->size + jitter(st, 256)); /* around EOF */
	if (r < 60)
		return st->size + 1 + (off_t)rnd(st, 256 * KIB); /* hole */
	return (off_t)rnd(st, (uint64_t)st->size + 1);
}

static size_t pick_len(struct state *st)
{
	uint64_t r = rnd(st, 100);

	if (r < 10)
		return 1;
	if (r < 35)
		return 1 + rnd(st, 64);
	if (r < 60)
		return (size_t)((rnd(st, 2) ? 4096 : 8192) + block_jitter(st));
	if (r < 97)
		return 1 + rnd(st, 64 * KIB);
	return 1 + rnd(st, MIB);
}

/* Move/shorten [off, off + *len) so that it ends within max_size. */
static off_t fit_in_max(const struct state *st, off_t off, size_t *len)
{
	if ((off_t)*len > st->max_size)
		*len = (size_t)st->max_size;
	if (off + (off_t)*len > st->max_size)
		off = st->max_size - (off_t)*len;
	return off;
}

static void touch(struct state *st, off_t lo, off_t hi)
{
	st->lo = lo;
	st->hi = hi;
}

/* ------------------------------------------------------------------ */
/* I/O helpers: every call is checked                                  */
/* ------------------------------------------------------------------ */

static size_t pread_full(const struct state *st, int side, unsigned char *buf,
			 size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(st->f[side].fd, buf + done, len - done,
				  off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die_sys(st, "pread", side);
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return done;
}

static void check_written(const struct state *st, const char *call, int side,
			  ssize_t r, size_t len)
{
	if (r < 0)
		die_sys(st, call, side);
	if ((size_t)r != len)
		die_msg(st, "short %s on %s file %s: %zd of %zu bytes", call,
			side_name[side], st->f[side].path, r, len);
}

static off_t fstat_size(const struct state *st, int side)
{
	struct stat sb;

	if (fstat(st->f[side].fd, &sb) != 0)
		die_sys(st, "fstat", side);
	return sb.st_size;
}

static off_t stat_size(const struct state *st, int side)
{
	struct stat sb;

	if (stat(st->f[side].path, &sb) != 0)
		die_sys(st, "stat", side);
	return sb.st_size;
}

static void open_fds(struct state *st, int side, int extra_flags)
{
	struct file *f = &st->f[side];

	f->fd = open(f->path, O_RDWR | O_CLOEXEC | extra_flags, 0644);
	if (f->fd < 0)
		die_sys(st, "open(O_RDWR)", side);
	f->afd = open(f->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (f->afd < 0)
		die_sys(st, "open(O_APPEND)", side);
}

static void close_fds(struct state *st, int side)
{
	if (close(st->f[side].fd) != 0)
		die_sys(st, "close", side);
	if (close(st->f[side].afd) != 0)
		die_sys(st, "close(O_APPEND fd)", side);
	st->f[side].fd = st->f[side].afd = -1;
}

/* ------------------------------------------------------------------ */
/* Comparisons                                                         */
/* ------------------------------------------------------------------ */

static void compare_range(struct state *st, const char *what, off_t off,
			  size_t len)
{
	size_t nt = pread_full(st, TEST, st->rbuf[TEST], len, off);
	size_t nr = pread_full(st, REF, st->rbuf[REF], len, off);

	if (nt != nr || memcmp(st->rbuf[TEST], st->rbuf[REF], nt) != 0)
		report_bytes(st, what, off, st->rbuf[TEST], nt, "test",
			     st->rbuf[REF], nr, "ref");
}

static void check_sizes(struct state *st)
{
	off_t t = fstat_size(st, TEST);
	off_t r = fstat_size(st, REF);

	if (t != r)
		report_values(st, "file size (fstat) after step", t, r);
	st->size = r;
}

/* Compare the touched range plus one block either side (edges if large). */
static void check_region(struct state *st)
{
	off_t lo = clamp0(st->lo - BLK);
	off_t hi = st->hi + BLK;
	const char *what = "region around last operation";

	if (hi - lo <= (off_t)(2 * EDGE)) {
		compare_range(st, what, lo, (size_t)(hi - lo));
		return;
	}
	compare_range(st, what, lo, EDGE);
	compare_range(st, what, hi - (off_t)EDGE, EDGE);
}

static void full_compare(struct state *st)
{
	for (off_t off = 0;; off += (off_t)CHUNK) {
		size_t nt = pread_full(st, TEST, st->rbuf[TEST], CHUNK, off);
		size_t nr = pread_full(st, REF, st->rbuf[REF], CHUNK, off);

		if (nt != nr || memcmp(st->rbuf[TEST], st->rbuf[REF], nt) != 0)
			report_bytes(st, "full file compare", off,
				     st->rbuf[TEST], nt, "test",
				     st->rbuf[REF], nr, "ref");
		if (nt < CHUNK)
			return;
	}
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static char *desc_buf(struct state *st)
{
	return st->hist[st->step % HISTORY];
}

static void op_write(struct state *st)
{
	size_t len = pick_len(st);
	off_t off;

	if (rnd(st, 100) == 0) { /* sparse write past max_size */
		off = st->max_size + (off_t)rnd(st, MIB);
		len = len > 64 * KIB ? 64 * KIB : len;
	} else {
		off = fit_in_max(st, pick_offset(st), &len);
	}
	fill_data(st, st->wbuf, len);
	snprintf(desc_buf(st), DESC_LEN, "pwrite off=%jd len=%zu (size %jd)",
		 (intmax_t)off, len, (intmax_t)st->size);
	for (int s = TEST; s <= REF; s++)
		check_written(st, "pwrite", s,
			      pwrite(st->f[s].fd, st->wbuf, len, off), len);
	touch(st, off, off + (off_t)len);
	st->n.writes++;
}

static void op_read(struct state *st)
{
	size_t len = pick_len(st);
	off_t off = rnd(st, 4) ? pick_offset(st)
			       : clamp0(st->size - (off_t)rnd(st, len + 1));
	ssize_t r[2];

	snprintf(desc_buf(st), DESC_LEN, "pread off=%jd len=%zu (size %jd)",
		 (intmax_t)off, len, (intmax_t)st->size);
	for (int s = TEST; s <= REF; s++) {
		r[s] = pread(st->f[s].fd, st->rbuf[s], len, off);
		if (r[s] < 0)
			die_sys(st, "pread", s);
	}
	if (r[TEST] != r[REF])
		report_values(st, "pread return value", r[TEST], r[REF]);
	if (memcmp(st->rbuf[TEST], st->rbuf[REF], (size_t)r[REF]) != 0)
		report_bytes(st, "pread data", off, st->rbuf[TEST],
			     (size_t)r[TEST], "test", st->rbuf[REF],
			     (size_t)r[REF], "ref");
	touch(st, off, off);
	st->n.reads++;
}

static off_t pick_trunc_size(struct state *st)
{
	uint64_t r = rnd(st, 100);

	if (r < 10)
		return 0;
	if (r < 35 || (r < 60 && st->size >= st->max_size))
		return (off_t)rnd(st, (uint64_t)st->size + 1); /* shrink */
	if (r < 60) { /* grow, leaving a hole */
		off_t grown = st->size + 1 + (off_t)rnd(st, 256 * KIB);
		return grown < st->max_size ? grown : st->max_size;
	}
	if (r < 85) {
		off_t sz = near_block(st, st->max_size);
		return sz < st->max_size ? sz : st->max_size;
	}
	return (off_t)rnd(st, (uint64_t)st->max_size + 1);
}

static void op_truncate(struct state *st)
{
	off_t old = st->size;
	off_t sz = pick_trunc_size(st);

	snprintf(desc_buf(st), DESC_LEN, "ftruncate %jd -> %jd",
		 (intmax_t)old, (intmax_t)sz);
	for (int s = TEST; s <= REF; s++)
		if (ftruncate(st->f[s].fd, sz) != 0)
			die_sys(st, "ftruncate", s);
	touch(st, old < sz ? old : sz, old < sz ? sz : old);
	st->n.truncates++;
}

static void op_append(struct state *st)
{
	size_t len = pick_len(st);
	off_t pos[2];

	if (st->size + (off_t)len > st->max_size && len > 64)
		len = 64;
	fill_data(st, st->wbuf, len);
	snprintf(desc_buf(st), DESC_LEN, "append len=%zu (size %jd)", len,
		 (intmax_t)st->size);
	for (int s = TEST; s <= REF; s++) {
		check_written(st, "write(O_APPEND)", s,
			      write(st->f[s].afd, st->wbuf, len), len);
		pos[s] = lseek(st->f[s].afd, 0, SEEK_CUR);
		if (pos[s] < 0)
			die_sys(st, "lseek(O_APPEND fd)", s);
	}
	if (pos[TEST] != pos[REF])
		report_values(st, "file offset after O_APPEND write",
			      pos[TEST], pos[REF]);
	touch(st, st->size, st->size + (off_t)len);
	st->n.appends++;
}

static void op_fsync(struct state *st)
{
	bool data_only = rnd(st, 2);
	const char *call = data_only ? "fdatasync" : "fsync";

	snprintf(desc_buf(st), DESC_LEN, "%s", call);
	for (int s = TEST; s <= REF; s++)
		if ((data_only ? fdatasync(st->f[s].fd) : fsync(st->f[s].fd)) != 0)
			die_sys(st, call, s);
	st->n.fsyncs++;
}

static void op_reopen(struct state *st)
{
	snprintf(desc_buf(st), DESC_LEN, "fsync+fadvise(DONTNEED)+reopen");
	for (int s = TEST; s <= REF; s++) {
		if (fsync(st->f[s].fd) != 0)
			die_sys(st, "fsync", s);
		int e = posix_fadvise(st->f[s].fd, 0, 0, POSIX_FADV_DONTNEED);
		if (e != 0) {
			errno = e;
			die_sys(st, "posix_fadvise(DONTNEED)", s);
		}
		close_fds(st, s);
		open_fds(st, s, 0);
	}
	st->n.reopens++;
}

static void op_stat(struct state *st)
{
	off_t fs[2], ps[2];

	snprintf(desc_buf(st), DESC_LEN, "fstat+stat (size %jd)",
		 (intmax_t)st->size);
	for (int s = TEST; s <= REF; s++) {
		fs[s] = fstat_size(st, s);
		ps[s] = stat_size(st, s);
	}
	if (fs[TEST] != fs[REF])
		report_values(st, "fstat st_size", fs[TEST], fs[REF]);
	if (ps[TEST] != ps[REF])
		report_values(st, "stat(path) st_size", ps[TEST], ps[REF]);
	if (fs[TEST] != ps[TEST])
		report_values(st, "test file: fstat vs stat(path) st_size",
			      fs[TEST], ps[TEST]);
	st->n.stats++;
}

/* ------------------------------------------------------------------ */
/* mmap                                                                */
/* ------------------------------------------------------------------ */

static void map_both(struct state *st, unsigned char *map[2], size_t len)
{
	for (int s = TEST; s <= REF; s++) {
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			       st->f[s].fd, 0);
		if (p == MAP_FAILED)
			die_sys(st, "mmap", s);
		map[s] = p;
	}
}

static void unmap_both(struct state *st, unsigned char *map[2], size_t len,
		       bool sync)
{
	for (int s = TEST; s <= REF; s++) {
		if (sync && msync(map[s], len, MS_SYNC) != 0)
			die_sys(st, "msync(MS_SYNC)", s);
		if (munmap(map[s], len) != 0)
			die_sys(st, "munmap", s);
	}
}

/* After an mmap store, pread must return exactly the stored bytes. */
static void verify_mmap_store(struct state *st, off_t off, size_t len)
{
	for (int s = TEST; s <= REF; s++) {
		size_t n = pread_full(st, s, st->rbuf[s], len, off);
		if (n != len || memcmp(st->rbuf[s], st->wbuf, len) != 0)
			report_bytes(st, s == TEST
					 ? "mmap store not visible via pread (test file)"
					 : "mmap store not visible via pread (ref file)",
				     off, st->rbuf[s], n, side_name[s],
				     st->wbuf, len, "stored");
	}
}

static void op_mmap(struct state *st)
{
	if (st->size == 0) { /* nothing to map */
		op_stat(st);
		return;
	}
	size_t msize = (size_t)st->size;
	off_t off = (off_t)rnd(st, msize);
	size_t len = pick_len(st);
	bool store = rnd(st, 2);
	unsigned char *map[2];

	len = len < msize - (size_t)off ? len : msize - (size_t)off;
	snprintf(desc_buf(st), DESC_LEN, "mmap %s off=%jd len=%zu (size %zu)",
		 store ? "store" : "compare", (intmax_t)off, len, msize);
	map_both(st, map, msize);
	if (store) {
		fill_data(st, st->wbuf, len);
		memcpy(map[TEST] + off, st->wbuf, len);
		memcpy(map[REF] + off, st->wbuf, len);
	} else if (memcmp(map[TEST] + off, map[REF] + off, len) != 0) {
		report_bytes(st, "data read through mmap", off, map[TEST] + off,
			     len, "test", map[REF] + off, len, "ref");
	}
	unmap_both(st, map, msize, store);
	if (store)
		verify_mmap_store(st, off, len);
	touch(st, off, off + (off_t)len);
	st->n.mmaps++;
}

/* ------------------------------------------------------------------ */
/* Main loop                                                           */
/* ------------------------------------------------------------------ */

static void run_step(struct state *st)
{
	uint64_t r = rnd(st, 1000);
	off_t probe = (off_t)rnd(st, (uint64_t)st->size + 1);

	touch(st, probe, probe); /* ops that touch nothing check a probe */
	if (r < 380)
		op_write(st);
	else if (r < 600)
		op_read(st);
	else if (r < 700)
		op_truncate(st);
	else if (r < 790)
		op_append(st);
	else if (r < 880 && st->use_mmap)
		op_mmap(st);
	else if (r < 880)
		op_read(st);
	else if (r < 940)
		op_stat(st);
	else if (r < 980)
		op_fsync(st);
	else
		op_reopen(st);
}

static void run(struct state *st)
{
	for (st->step = 1; st->step <= st->nops; st->step++) {
		run_step(st);
		if (st->verbose)
			printf("step %" PRIu64 ": %s\n", st->step, cur_desc(st));
		check_sizes(st);
		check_region(st);
		if (st->step % FULL_EVERY == 0)
			full_compare(st);
	}
	st->step = st->nops; /* a failure here reports the last op */
	full_compare(st);
}

/* ------------------------------------------------------------------ */
/* Setup and argument parsing                                          */
/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: difftest [--ops N] [--seed S] [--max-size BYTES] "
		"[--no-mmap] [--verbose] TESTFILE REFFILE\n");
	exit(2);
}

/* Shift for a K/M/G size suffix (either case), 0 if not a suffix. */
static int unit_shift(char c)
{
	switch (c) {
	case 'k': case 'K': return 10;
	case 'm': case 'M': return 20;
	case 'g': case 'G': return 30;
	default: return 0;
	}
}

/* Parse a non-negative integer with an optional K/M/G suffix. */
static uint64_t parse_num(const char *opt, const char *s, bool suffix_ok)
{
	char *end;
	uint64_t v;

	errno = 0;
	if (s == NULL || *s == '\0' || *s == '-')
		goto bad;
	v = strtoull(s, &end, 0);
	if (errno != 0)
		goto bad;
	if (suffix_ok && *end != '\0' && end[1] == '\0') {
		int shift = unit_shift(*end);
		if (shift == 0 || v > (UINT64_MAX >> shift))
			goto bad;
		v <<= shift;
		end++;
	}
	if (*end != '\0')
		goto bad;
	return v;
bad:
	fprintf(stderr, "difftest: bad value for %s: %s\n", opt, s ? s : "(missing)");
	usage();
	return 0;
}

static uint64_t time_seed(void)
{
	struct timespec ts;
	uint64_t x;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
		perror("difftest: clock_gettime");
		exit(2);
	}
	x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	x ^= (uint64_t)getpid() << 32;
	return splitmix64(&x);
}

static void parse_args(struct state *st, int argc, char **argv)
{
	bool have_seed = false;
	int i;

	st->nops = 100000;
	st->max_size = 4 * (off_t)MIB;
	st->use_mmap = true;
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "--ops") == 0) {
			st->nops = parse_num(a, argv[++i], false);
		} else if (strcmp(a, "--seed") == 0) {
			st->seed = parse_num(a, argv[++i], false);
			have_seed = true;
		} else if (strcmp(a, "--max-size") == 0) {
			uint64_t m = parse_num(a, argv[++i], true);
			if (m == 0 || m > ((uint64_t)1 << 40)) {
				fprintf(stderr, "difftest: --max-size must be "
					"between 1 and 1T bytes\n");
				usage();
			}
			st->max_size = (off_t)m;
		} else if (strcmp(a, "--no-mmap") == 0) {
			st->use_mmap = false;
		} else if (strcmp(a, "--verbose") == 0) {
			st->verbose = true;
		} else {
			usage();
		}
	}
	if (argc - i != 2)
		usage();
	st->f[TEST].path = argv[i];
	st->f[REF].path = argv[i + 1];
	if (!have_seed)
		st->seed = time_seed();
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (p == NULL) {
		perror("difftest: malloc");
		exit(2);
	}
	return p;
}

/* Refuse to run if both paths name the same file: nothing would be tested. */
static void check_distinct(const struct state *st)
{
	struct stat a, b;

	if (fstat(st->f[TEST].fd, &a) != 0)
		die_sys(st, "fstat", TEST);
	if (fstat(st->f[REF].fd, &b) != 0)
		die_sys(st, "fstat", REF);
	if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		die_msg(st, "TESTFILE and REFFILE are the same file");
}

static void setup(struct state *st)
{
	rng_seed(st, st->seed);
	st->wbuf = xmalloc(BUF_SIZE);
	st->rbuf[TEST] = xmalloc(BUF_SIZE);
	st->rbuf[REF] = xmalloc(BUF_SIZE);
	snprintf(desc_buf(st), DESC_LEN, "setup (create and truncate files)");
	for (int s = TEST; s <= REF; s++)
		open_fds(st, s, O_CREAT | O_TRUNC);
	check_distinct(st);
}

static void teardown(struct state *st)
{
	snprintf(desc_buf(st), DESC_LEN, "teardown (close files)");
	for (int s = TEST; s <= REF; s++)
		close_fds(st, s);
	free(st->wbuf);
	free(st->rbuf[TEST]);
	free(st->rbuf[REF]);
}

int main(int argc, char **argv)
{
	static struct state st;

	parse_args(&st, argc, argv);
	printf("difftest: seed %" PRIu64 "\n", st.seed);
	fflush(stdout);
	setup(&st);
	run(&st);
	teardown(&st);
	printf("difftest: %" PRIu64 " ops ok (writes %" PRIu64 ", reads %" PRIu64
	       ", truncates %" PRIu64 ", mmap %" PRIu64 ", appends %" PRIu64
	       ", reopens %" PRIu64 ", fsyncs %" PRIu64 ", stats %" PRIu64 ")\n",
	       st.nops, st.n.writes, st.n.reads, st.n.truncates, st.n.mmaps,
	       st.n.appends, st.n.reopens, st.n.fsyncs, st.n.stats);
	if (fflush(stdout) != 0) {
		perror("difftest: stdout");
		return 2;
	}
	return 0;
}
