#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
struct uffdio_move_args { /* struct uffdio_move, Linux 6.8+ */
	__u64 dst, src, len, mode;
	__s64 move;
};
#ifndef UFFDIO_MOVE
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move_args)
#endif
/* userfaultfd RWP, Linux 7.3 include/uapi/linux/userfaultfd.h:114, :276-277, :293, :387-392 */
struct uffdio_rwprotect_args {
	__u64 start, len; /* struct uffdio_range */
	__u64 mode;
};
#ifndef UFFD_FEATURE_RWP
#define UFFD_FEATURE_RWP (1 << 17)
#endif
#ifndef UFFD_FEATURE_RWP_ASYNC
#define UFFD_FEATURE_RWP_ASYNC (1 << 18)
#endif
#ifndef UFFDIO_REGISTER_MODE_RWP
#define UFFDIO_REGISTER_MODE_RWP ((__u64)1 << 3)
#endif
#ifndef UFFDIO_RWPROTECT
#define UFFDIO_RWPROTECT _IOWR(UFFDIO, 0x09, struct uffdio_rwprotect_args)
#endif
#ifndef UFFDIO_RWPROTECT_MODE_RWP
#define UFFDIO_RWPROTECT_MODE_RWP ((__u64)1 << 0)
#endif

#define PAGE_SZ 4096UL
#define WINDOW_BASE @WINDOW_BASE@
#define VA_PAGES @VA_PAGES@
#define MAX_PROCS @MAX_PROCS@
#define PAGE_ADDR(p) ((char *)(WINDOW_BASE + (unsigned long)(p) * PAGE_SZ))

/* op results besides 0 and -errno (the trace format's names) */
#define RES_SIGBUS 1007
#define RES_SIGSEGV 1011
#define RES_UFFD_WP_TRAP 2000
#define RES_NA 999

enum op_kind {
@ENUM@
};

struct op {
	int kind, pid, a, b, c, d;
};

@TABLE@

/* ---------------------------------------------------------------- setup */
static const char *swapdev = "/dev/vda";
static const char *zramdev = "/dev/zram0";
static const char *active_swap; /* the device swapped on, or NULL */
static const char *cgroup = "/sys/fs/cgroup/pmdswap-fuzz";

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	int r = write(fd, s, strlen(s)) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static long vmstat_read(const char *name)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char k[128];
	long v, r = 0;
	if (!f)
		return 0;
	while (fscanf(f, "%127s %ld", k, &v) == 2)
		if (!strcmp(k, name)) {
			r = v;
			break;
		}
	fclose(f);
	return r;
}

static void wait_writeback(void)
{
	for (int i = 0; i < 500 && vmstat_read("nr_writeback"); i++)
		usleep(10000);
}

/* mkswap: a version-1 swap header covering the whole device */
static int make_swap(const char *dev)
{
	char page[PAGE_SZ];
	uint64_t bytes = 0;
	int fd = open(dev, O_RDWR);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
		struct stat st;
		bytes = fstat(fd, &st) ? 0 : (uint64_t)st.st_size;
	}
	memset(page, 0, sizeof(page));
	uint32_t *info = (uint32_t *)(page + 1024);
	info[0] = 1;                                  /* version */
	info[1] = (uint32_t)(bytes / PAGE_SZ - 1);    /* last_page */
	info[2] = 0;                                  /* nr_badpages */
	memcpy(page + PAGE_SZ - 10, "SWAPSPACE2", 10);
	int r = pwrite(fd, page, PAGE_SZ, 0) == PAGE_SZ ? 0 : -EIO;
	fsync(fd);
	close(fd);
	return r;
}

/* a fresh swap device: an SSD-like disk (async), or zram (SWP_SYNCHRONOUS_IO) */
static int swap_on(int sync)
{
	const char *dev = sync ? zramdev : swapdev;
	char path[256];
	const char *b = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	if (active_swap) /* one device at a time, as in the model: the kernel says EBUSY */
		return swapon(active_swap, 0) ? -errno : -EBUSY;
	if (sync) {
		snprintf(path, sizeof(path), "/sys/block/%s/reset", b);
		write_file(path, "1");
		snprintf(path, sizeof(path), "/sys/block/%s/disksize", b);
		write_file(path, "64M");
	} else {
		/* THP swap-out as a whole needs SWP_SOLIDSTATE (cluster allocation) */
		snprintf(path, sizeof(path), "/sys/block/%s/queue/rotational", b);
		write_file(path, "0");
	}
	int r = make_swap(dev);
	if (r)
		return r;
	if (swapon(dev, 0))
		return -errno;
	active_swap = dev;
	return 0;
}

static int swap_off(void)
{
	if (!active_swap)
		return swapoff(swapdev) ? -errno : 0; /* the kernel's answer for a device not on */
	if (swapoff(active_swap))
		return -errno;
	active_swap = NULL;
	return 0;
}

static void setup_system(void)
{
	const char *t = "/sys/kernel/mm/transparent_hugepage";
	char p[256];
	snprintf(p, sizeof(p), "%s/enabled", t);
	write_file(p, "madvise");
	snprintf(p, sizeof(p), "%s/defrag", t);
	write_file(p, "madvise");
	snprintf(p, sizeof(p), "%s/use_zero_page", t);
	write_file(p, "0");
	/* khugepaged must not collapse anything behind the trace's back */
	snprintf(p, sizeof(p), "%s/khugepaged/pages_to_scan", t);
	write_file(p, "1");
	snprintf(p, sizeof(p), "%s/khugepaged/scan_sleep_millisecs", t);
	write_file(p, "86400000");
	write_file("/proc/sys/vm/page-cluster", "0"); /* no swap readahead */
	/* a trace starts with zswap off, as the model does (zswap_enable turns it on; an earlier
	 * program in the same boot may have); absent without CONFIG_ZSWAP */
	write_file("/sys/module/zswap/parameters/enabled", "N");
	swapoff(swapdev);
	swapoff(zramdev);
	mkdir("/sys/fs/cgroup", 0755);
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	mkdir(cgroup, 0755);
}

/* ---------------------------------------------------------------- page contents */
static uint32_t pattern(uint32_t first, unsigned word)
{
	return word ? first ^ (word * 0x9e3779b1u) : first;
}

static void fill_page(char *p, uint32_t first)
{
	uint32_t *w = (uint32_t *)p;
	w[0] = first; /* the first store makes the fault */
	for (unsigned i = 1; i < PAGE_SZ / 4; i++)
		w[i] = pattern(first, i);
}

/* a page is consistent if it is all zero or follows its first word's pattern */
static int page_consistent(const uint32_t *w)
{
	int zero = 1, pat = 1;
	for (unsigned i = 0; i < PAGE_SZ / 4 && (zero || pat); i++) {
		zero &= w[i] == 0;
		pat &= w[i] == pattern(w[0], i);
	}
	return zero || pat;
}

/* ---------------------------------------------------------------- worker side */
static int my_slot = -1;
static int cmd_fd[MAX_PROCS][2], reply_fd[MAX_PROCS][2];
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig;
static int uffd = -1;

static void on_fault(int sig)
{
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

static pid_t worker_tid; /* the worker's (only other) thread: the one that faults */

static void *uffd_handler(void *arg)
{
	/* A store to a uffd-wp protected page blocks in handle_userfault() after the kernel has done
	 * everything it does before trapping (a swap-in included). That is the trace's UFFD_WP_TRAP:
	 * interrupt the blocked thread with SIGUSR1 (the wait is interruptible), whose handler jumps
	 * out of the access, so the store never happens and the page is left as the kernel left it. */
	struct uffd_msg msg;
	(void)arg;
	for (;;) {
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
		} else { /* MISSING: never registered; should one come, never leave it blocked */
			struct uffdio_zeropage zp = {
				.range = { .start = msg.arg.pagefault.address & ~(PAGE_SZ - 1), .len = PAGE_SZ },
			};
			ioctl(uffd, UFFDIO_ZEROPAGE, &zp);
		}
	}
	return NULL;
}

static int uffd_open(void)
{
	if (uffd >= 0)
		return 0;
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		return -errno;
	/* RWP in async mode (the kernel resolves an access itself, do_uffd_rwp()), where the
	 * profile's kernel has it: deterministic, nothing for the handler thread to do */
	struct uffdio_api api = { .api = UFFD_API, .features = @UFFD_FEATURES@ };
	if (ioctl(uffd, UFFDIO_API, &api))
		return -errno;
	pthread_t th;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are for the worker thread only */
	worker_tid = syscall(SYS_gettid);
	pthread_create(&th, NULL, uffd_handler, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

/* pagemap bit 57 of one of our own pages: uffd-wp on its PTE, swap entry or PMD (no fault) */
static int page_uffd_wp(const char *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((unsigned long)addr / PAGE_SZ) * 8) != sizeof(e))
		e = 0;
	close(fd);
	return (int)((e >> 57) & 1);
}

/* user stores (write) or one access (fault): page by page, a failing page stops the op */
static int access_pages(unsigned start, unsigned n, int write, int value, int store_same)
{
	for (unsigned p = start; p < start + n; p++) {
		char *addr = PAGE_ADDR(p);
		if (sigsetjmp(fault_jmp, 1))
			return fault_sig == SIGUSR1 ? RES_UFFD_WP_TRAP :
			       fault_sig == SIGBUS ? RES_SIGBUS : RES_SIGSEGV;
		if (!write)
			(void)*(volatile uint32_t *)addr;
		else if (store_same && page_uffd_wp(addr)) {
			/* a uffd-wp trap blocks GUP killably, not interruptibly: read, then store
			 * (kernel-check gives the model the same read fault first) */
			(void)*(volatile uint32_t *)addr;
			*(volatile uint32_t *)addr = *(volatile uint32_t *)addr;
		} else if (store_same) { /* a write fault that stores the value already there */
			/* `*p = *p` faults as a read first, and so does a locked RMW under qemu's TCG;
			 * GUP with FOLL_WRITE is one FAULT_FLAG_WRITE fault. It refuses a VMA the
			 * store would SIGSEGV on without touching it: no VMA (-ENOMEM), not writable
			 * (-EINVAL, 7.3 mm/madvise.c madvise_populate()), VM_FAULT_SIGSEGV (-EFAULT) */
			int r = madvise(addr, PAGE_SZ, MADV_POPULATE_WRITE) ? -errno : 0;
			if (r == -EFAULT || r == -ENOMEM || r == -EINVAL)
				return RES_SIGSEGV;
			if (r == -EHWPOISON)
				return RES_SIGBUS;
			*(volatile uint32_t *)addr = *(volatile uint32_t *)addr;
		}
		else
			fill_page(addr, ((uint32_t)(value & 0xffff) << 16) | p);
	}
	return 0;
}

/* evict: while the orchestrator reclaims, every VMA of this worker is mlocked (on fault, so
 * nothing is faulted in): only folios no page table maps can go */
static void lock_all(int lock)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s, e;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || strstr(line, "[v"))
			continue;
		if (lock)
			syscall(__NR_mlock2, (void *)s, e - s, MLOCK_ONFAULT);
		else
			munlock((void *)s, e - s);
	}
	fclose(f);
}

static int madv(unsigned start, unsigned n, int advice)
{
	return madvise(PAGE_ADDR(start), n * PAGE_SZ, advice) ? -errno : 0;
}

/* mincore: the worker prints its answers itself (K:<op>.mc=off+len:v;... relative to the start,
 * v 2 where the kernel wrote nothing: after -ENOMEM), before it replies */
static int do_mincore(const struct op *o)
{
	static unsigned char vec[VA_PAGES];
	int r;
	memset(vec, 2, sizeof(vec));
	r = mincore(PAGE_ADDR(o->a), o->b * PAGE_SZ, vec) ? -errno : 0;
	printf("K:%d.mc=", (int)(o - ops));
	for (unsigned p = 0; p < o->b;) {
		unsigned q = p + 1;
		int v = vec[p] == 2 ? 2 : vec[p] & 1;
		while (q < o->b && (vec[q] == 2 ? 2 : vec[q] & 1) == v)
			q++;
		printf("%s%u+%u:%d", p ? ";" : "", p, q - p, v);
		p = q;
	}
	putchar('\n');
	return r;
}

static int run_op(const struct op *o, int arg, int *extra)
{
	switch (o->kind) {
	case OP_MMAP: {
		void *p = mmap(PAGE_ADDR(o->a), o->b * PAGE_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		if (p != PAGE_ADDR(o->a)) { /* a kernel without MAP_FIXED_NOREPLACE */
			munmap(p, o->b * PAGE_SZ);
			return -EEXIST;
		}
		return o->c ? madv(o->a, o->b, MADV_HUGEPAGE) : 0;
	}
	case OP_MUNMAP:
		return munmap(PAGE_ADDR(o->a), o->b * PAGE_SZ) ? -errno : 0;
	case OP_WRITE:
		return access_pages(o->a, o->b, 1, o->c, 0);
	case OP_FAULT:
		return access_pages(o->a, 1, o->c, 0, 1);
	case OP_PAGEOUT:
		return madv(o->a, o->b, MADV_PAGEOUT);
	case OP_DONTNEED:
		return madv(o->a, o->b, MADV_DONTNEED);
	case OP_FREE:
		return madv(o->a, o->b, MADV_FREE);
	case OP_WILLNEED:
		return madv(o->a, o->b, MADV_WILLNEED);
	case OP_COLD:
		return madv(o->a, o->b, MADV_COLD);
	case OP_MINCORE:
		return do_mincore(o);
	case OP_MPROTECT: {
		int prot = o->c == 0 ? PROT_NONE : o->c == 1 ? PROT_READ : PROT_READ | PROT_WRITE;
		return mprotect(PAGE_ADDR(o->a), o->b * PAGE_SZ, prot) ? -errno : 0;
	}
	case OP_MREMAP: {
		void *p = mremap(PAGE_ADDR(o->a), o->b * PAGE_SZ, o->b * PAGE_SZ,
				 MREMAP_MAYMOVE | MREMAP_FIXED, PAGE_ADDR(o->c));
		return p == MAP_FAILED ? -errno : 0;
	}
	case OP_MREMAP_SHRINK: {
		void *p = mremap(PAGE_ADDR(o->a), o->b * PAGE_SZ, o->c * PAGE_SZ, 0);
		return p == MAP_FAILED ? -errno : 0;
	}
	case OP_UFFD_REGISTER: {
		int r = uffd_open();
		if (r)
			return r;
		struct uffdio_register reg = {
			.range = { .start = (unsigned long)PAGE_ADDR(o->a), .len = o->b * PAGE_SZ },
			/* WP or RWP, never MISSING: it would send first touches to the handler, which the models
			 * do not have; UFFDIO_MOVE needs only a registered dst (validate_move_areas()) */
			.mode = o->c ? UFFDIO_REGISTER_MODE_RWP : UFFDIO_REGISTER_MODE_WP,
		};
		return ioctl(uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
	}
	case OP_UFFD_RWP: {
		if (uffd < 0)
			return -ENOENT; /* nothing registered: no VMA of this context */
		struct uffdio_rwprotect_args rw = {
			.start = (unsigned long)PAGE_ADDR(o->a), .len = o->b * PAGE_SZ,
			.mode = o->c ? UFFDIO_RWPROTECT_MODE_RWP : 0,
		};
		return ioctl(uffd, UFFDIO_RWPROTECT, &rw) ? -errno : 0;
	}
	case OP_UFFD_WP: {
		if (uffd < 0)
			return -ENOENT; /* nothing registered: no VMA of this context */
		struct uffdio_writeprotect wp = {
			.range = { .start = (unsigned long)PAGE_ADDR(o->a), .len = o->b * PAGE_SZ },
			.mode = o->c ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
		};
		return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
	}
	case OP_UFFD_MOVE: {
		/* a process that registered nothing asks a fresh context, whose VMAs are none of its
		 * (validate_move_areas(): -EINVAL), as the model assumes */
		int r = uffd_open();
		if (r)
			return r;
		struct uffdio_move_args mv = {
			.dst = (unsigned long)PAGE_ADDR(o->c), .src = (unsigned long)PAGE_ADDR(o->a),
			.len = o->b * PAGE_SZ, .mode = 0,
		};
		return ioctl(uffd, UFFDIO_MOVE, &mv) ? -errno : 0;
	}
	case OP_FORK: {
		pid_t pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) { /* the child takes slot `arg`; no uffd context is inherited */
			my_slot = arg;
			uffd = -1;
			return -1000; /* tells the loop: start serving the new slot */
		}
		*extra = pid;
		return 0;
	}
	case OP_EXIT:
		_exit(0);
	}
	return -ENOSYS;
}

static void worker_loop(int slot)
{
	struct sigaction sa = { .sa_handler = on_fault };
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL); /* from the uffd handler thread: a uffd-wp trap */
	signal(SIGCHLD, SIG_IGN); /* exited children go away at once */
	my_slot = slot;
	for (;;) {
		int cmd[2], rep[2] = { 0, 0 };
		if (read(cmd_fd[my_slot][0], cmd, sizeof(cmd)) != sizeof(cmd))
			_exit(1);
		if (cmd[0] == -1 || cmd[0] == -2) {
			lock_all(cmd[0] == -1);
		} else {
			rep[0] = run_op(&ops[cmd[0]], cmd[1], &rep[1]);
			if (rep[0] == -1000)
				continue; /* the new child: nothing to answer, the parent does */
		}
		if (write(reply_fd[my_slot][1], rep, sizeof(rep)) != sizeof(rep))
			_exit(1);
	}
}

/* ---------------------------------------------------------------- orchestrator side */
static pid_t slot_pid[MAX_PROCS];
static char obuf[1 << 16];

static void out(const char *tag, const char *key, const char *fmt, ...)
{
	va_list ap;
	printf("K:%s.%s=", tag, key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int send_cmd(int slot, int cmd, int arg, int *extra)
{
	int c[2] = { cmd, arg }, rep[2];
	if (write(cmd_fd[slot][1], c, sizeof(c)) != sizeof(c))
		return -EPIPE;
	if (read(reply_fd[slot][0], rep, sizeof(rep)) != sizeof(rep))
		return -EPIPE;
	if (extra)
		*extra = rep[1];
	return rep[0];
}

static void wait_gone(pid_t pid)
{
	char path[64], st[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	for (int i = 0; i < 5000; i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return;
		ssize_t n = read(fd, st, sizeof(st) - 1);
		close(fd);
		st[n > 0 ? n : 0] = 0;
		char *c = strrchr(st, ')');
		if (!c || c[2] == 'Z' || c[2] == 'X') /* exit_mm() is done before the zombie state */
			return;
		usleep(1000);
	}
}

static int evict(void)
{
	/* memcg memory.reclaim of the workers' cgroup, with every mapped page mlocked: written-back
	 * folios that no page table maps leave the swap cache; nothing else is reclaimed */
	char path[256], amount[64];
	wait_writeback();
	for (int s = 0; s < MAX_PROCS; s++)
		if (slot_pid[s])
			send_cmd(s, -1, 0, NULL);
	/* Anon only (swappiness=max): otherwise user_proactive_reclaim() (7.3 mm/vmscan.c:7999)
	 * may meet the target with file pages and stop, leaving the swap cache. Ask for the whole
	 * swap device, not SwapCached: /proc/meminfo's count lags (per-cpu vmstat deltas) and reads
	 * 0 with folios still cached (both found by kernel-check: a later fault did no pswpin). */
	int r;
	snprintf(path, sizeof(path), "%s/memory.reclaim", cgroup);
	snprintf(amount, sizeof(amount), "64M swappiness=max"); /* both swap devices are 64 MiB */
	r = write_file(path, amount);
	if (r == -EINVAL) /* no swappiness= key before Linux 6.13 (6.1): the plain request */
		r = write_file(path, "64M");
	if (r == -EAGAIN) /* reclaimed less than asked: fine, only swap cache was eligible */
		r = 0;
	for (int s = 0; s < MAX_PROCS; s++)
		if (slot_pid[s])
			send_cmd(s, -2, 0, NULL);
	return r;
}

static int split_thp(void)
{
	return write_file("/sys/kernel/debug/split_huge_pages", "1");
}

static int zswap_enable(void)
{
	return write_file("/sys/module/zswap/parameters/enabled", "Y");
}

static const char *vm_names[] = {
	"thp_fault_alloc", "thp_fault_fallback", "thp_swpout", "thp_swpout_fallback",
	"thp_split_pmd", "thp_split_page", "pswpout", "pswpin",
};
#define NVM (sizeof(vm_names) / sizeof(vm_names[0]))
static long vm_prev[NVM];

static void report_vmstat(const char *tag)
{
	char *o = obuf;
	for (unsigned i = 0; i < NVM; i++) {
		long v = vmstat_read(vm_names[i]);
		o += sprintf(o, "%s%s:%ld", i ? "," : "", vm_names[i], v - vm_prev[i]);
		vm_prev[i] = v;
	}
	out(tag, "vm", "%s", obuf);
}

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_UFFD_WP (1ULL << 57)
#define PM_EXCL (1ULL << 56)
#define PM_SOFTDIRTY (1ULL << 55)

struct vma { unsigned long s, e; char prot[8]; int hg, uw, ur; long rss, swap, ahp; };

static int read_vmas(pid_t pid, struct vma *v, int max)
{
	char path[64], line[512];
	unsigned long lo = WINDOW_BASE, hi = WINDOW_BASE + VA_PAGES * PAGE_SZ;
	int n = 0, in = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
			in = s < hi && e > lo && n < max;
			if (in) {
				memset(&v[n], 0, sizeof(v[n]));
				v[n].s = s;
				v[n].e = e;
				strcpy(v[n].prot, perms[0] != 'r' ? "none" : perms[1] == 'w' ? "rw" : "r");
				n++;
			}
			continue;
		}
		if (!in)
			continue;
		struct vma *c = &v[n - 1];
		if (!strncmp(line, "Rss:", 4))
			c->rss = atol(line + 4);
		else if (!strncmp(line, "Swap:", 5))
			c->swap = atol(line + 5);
		else if (!strncmp(line, "AnonHugePages:", 14))
			c->ahp = atol(line + 14);
		else if (!strncmp(line, "VmFlags:", 8)) {
			c->hg = strstr(line, " hg") != NULL;
			c->uw = strstr(line, " uw") != NULL;
			c->ur = strstr(line, " ur") != NULL; /* VM_UFFD_RWP, 7.3 fs/proc/task_mmu.c:1241 */
		}
	}
	fclose(f);
	return n;
}

/* first words of pages [lo, hi) read from /proc/pid/mem (only pages the caller says hold an
 * entry, so that only the final check faults anything in) */
static void read_words(int memfd, const unsigned char *want, uint32_t *word, int *bad)
{
	static uint32_t buf[PAGE_SZ / 4];
	for (unsigned p = 0; p < VA_PAGES; p++) {
		if (!want[p])
			continue;
		if (pread(memfd, buf, PAGE_SZ, (off_t)(unsigned long)PAGE_ADDR(p)) != PAGE_SZ) {
			word[p] = 0xdeadbeef;
			(*bad)++;
			continue;
		}
		word[p] = buf[0];
		if (!page_consistent(buf))
			(*bad)++;
	}
}

static void report_contents(const char *tag, const char *key, const unsigned char *want,
			    const uint32_t *word)
{
	char *o = obuf;
	*o = 0;
	for (unsigned p = 0; p < VA_PAGES;) {
		if (!want[p]) {
			p++;
			continue;
		}
		unsigned q = p + 1;
		int same = 1, plus = 1;
		while (q < VA_PAGES && want[q] && (same || plus)) {
			int s2 = same && word[q] == word[p];
			int p2 = plus && word[q] - q == word[p] - p;
			if (!s2 && !p2)
				break;
			same = s2;
			plus = p2;
			q++;
		}
		if (o > obuf + sizeof(obuf) - 64)
			break;
		if (same)
			o += sprintf(o, "%s%u+%u:=%u", o == obuf ? "" : ";", p, q - p, word[p]);
		else
			o += sprintf(o, "%s%u+%u:+%u", o == obuf ? "" : ";", p, q - p, word[p] - p);
		p = q;
	}
	out(tag, key, "%s", obuf);
}

static void observe_slot(const char *tag, int s, int final)
{
	static uint64_t pm[VA_PAGES];
	static uint32_t word[VA_PAGES];
	static unsigned char want[VA_PAGES];
	static struct vma v[64];
	char path[64], key[32], *o;
	pid_t pid = slot_pid[s];
	int nv = read_vmas(pid, v, 64), bad = 0;
	long rss = 0, swp = 0, ahp = 0;

	o = obuf;
	*o = 0;
	for (int i = 0; i < nv; i++) {
		unsigned a = (v[i].s - WINDOW_BASE) / PAGE_SZ, b = (v[i].e - WINDOW_BASE) / PAGE_SZ;
		o += sprintf(o, "%s%u+%u:%s%s%s", i ? ";" : "", a, b - a, v[i].prot,
			     v[i].hg ? "h" : "", v[i].uw ? "u" : v[i].ur ? "R" : "");
		rss += v[i].rss;
		swp += v[i].swap;
		ahp += v[i].ahp;
	}
	snprintf(key, sizeof(key), "p%d.vma", s);
	out(tag, key, "%s", obuf);
	snprintf(key, sizeof(key), "p%d.smaps", s);
	out(tag, key, "%ld,%ld,%ld", rss, swp, ahp);

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	int fd = open(path, O_RDONLY);
	memset(pm, 0, sizeof(pm));
	if (fd >= 0) {
		pread(fd, pm, sizeof(pm), (WINDOW_BASE / PAGE_SZ) * 8);
		close(fd);
	}
	/* pages outside every VMA read as 0 from pagemap; mark them so runs stop at VMA edges */
	memset(want, 0, sizeof(want));
	for (int i = 0; i < nv; i++)
		for (unsigned long a = v[i].s; a < v[i].e; a += PAGE_SZ)
			want[(a - WINDOW_BASE) / PAGE_SZ] = 1;
	o = obuf;
	*o = 0;
	for (unsigned p = 0; p < VA_PAGES;) {
		if (!want[p]) {
			p++;
			continue;
		}
		uint64_t e = pm[p];
		char st = e & PM_PRESENT ? 'P' : e & PM_SWAP ? 'S' : 'N';
		uint64_t flags = e & (PM_PRESENT | PM_SWAP | PM_UFFD_WP | PM_EXCL | PM_SOFTDIRTY);
		uint64_t type = e & 0x1f, off = (e & ((1ULL << 55) - 1)) >> 5;
		unsigned q = p + 1;
		while (q < VA_PAGES && want[q]) {
			uint64_t f = pm[q];
			if ((f & (PM_PRESENT | PM_SWAP | PM_UFFD_WP | PM_EXCL | PM_SOFTDIRTY)) != flags)
				break;
			if (st == 'S' && ((f & 0x1f) != type || ((f & ((1ULL << 55) - 1)) >> 5) != off + (q - p)))
				break;
			q++;
		}
		if (o > obuf + sizeof(obuf) - 64)
			break;
		o += sprintf(o, "%s%u+%u:%c%s%s%s", o == obuf ? "" : ";", p, q - p, st,
			     e & PM_SOFTDIRTY ? "d" : "", e & PM_EXCL ? "x" : "", e & PM_UFFD_WP ? "w" : "");
		if (st == 'S')
			o += sprintf(o, "@%" PRIu64 ":%" PRIu64, type, off);
		p = q;
	}
	snprintf(key, sizeof(key), "p%d.pm", s);
	out(tag, key, "%s", obuf);

	/* contents: present pages now; after the last op every page holding an entry. Not, before
	 * the end, an RWP-protected page (pagemap bit 57 in a VmFlags "ur" VMA): GUP always faults
	 * on it (gup_can_follow_protnone(), 7.3 include/linux/mm.h:4881), so reading it through
	 * /proc/pid/mem would resolve the protection (do_uffd_rwp()) */
	static unsigned char rwp[VA_PAGES];
	memset(rwp, 0, sizeof(rwp));
	for (int i = 0; i < nv; i++)
		if (v[i].ur)
			for (unsigned long a = v[i].s; a < v[i].e; a += PAGE_SZ)
				rwp[(a - WINDOW_BASE) / PAGE_SZ] = 1;
	for (unsigned p = 0; p < VA_PAGES; p++)
		want[p] = want[p] && (pm[p] & (final ? (PM_PRESENT | PM_SWAP) : PM_PRESENT)) &&
			  (final || !(rwp[p] && (pm[p] & PM_UFFD_WP)));
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		read_words(fd, want, word, &bad);
		close(fd);
	}
	snprintf(key, sizeof(key), "p%d.ct", s);
	report_contents(tag, key, want, word);
	snprintf(key, sizeof(key), "p%d.bad", s);
	out(tag, key, "%d", bad);
}

static const char *res_name(int r, char *buf)
{
	switch (r) {
	case 0: return "0";
	case RES_SIGBUS: return "SIGBUS";
	case RES_SIGSEGV: return "SIGSEGV";
	case RES_UFFD_WP_TRAP: return "UFFD_WP_TRAP";
	case RES_NA: return "n/a";
	}
	if (r < 0) {
		const char *n = strerrorname_np(-r);
		sprintf(buf, "-%s", n ? n : "E?");
	} else {
		sprintf(buf, "%d", r);
	}
	return buf;
}

static pid_t spawn_worker(int slot)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (write_file("/sys/fs/cgroup/pmdswap-fuzz/cgroup.procs", "0"))
			fprintf(stderr, "warning: cannot join the memcg: evict will not work\n");
		worker_loop(slot);
	}
	return pid;
}

int main(int argc, char **argv)
{
	char tag[32], rb[64];
	setvbuf(stdout, NULL, _IOLBF, 0);
@SELECT@	if (argc > 1)
		swapdev = argv[1];
	if (argc > 2)
		zramdev = argv[2];
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	for (int s = 0; s < MAX_PROCS; s++)
		if (pipe(cmd_fd[s]) || pipe(reply_fd[s]))
			return 2;
	setup_system();
	printf("K:trace=%s\n", trace_name);
	printf("K:setup.swapon=%d\n", swap_on(0));
	for (unsigned i = 0; i < NVM; i++)
		vm_prev[i] = vmstat_read(vm_names[i]);
	slot_pid[0] = spawn_worker(0);

	for (int i = 0; i < NOPS; i++) {
		const struct op *o = &ops[i];
		int r = 0, extra = 0;
		switch (o->kind) {
		case OP_EVICT:
			r = evict();
			break;
		case OP_SWAPOFF:
			r = swap_off();
			break;
		case OP_SWAPON:
			r = swap_on(o->c);
			break;
		case OP_SPLIT_THP:
			r = split_thp();
			break;
		case OP_ZSWAP_ENABLE:
			r = zswap_enable();
			break;
		case OP_CLEAR_REFS: {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/clear_refs", slot_pid[o->pid]);
			r = slot_pid[o->pid] ? write_file(path, "4") : RES_NA;
			break;
		}
		case OP_FORK: {
			int child = -1;
			if (!slot_pid[o->pid]) {
				r = RES_NA;
				break;
			}
			for (int s = 0; s < MAX_PROCS && child < 0; s++)
				if (!slot_pid[s])
					child = s;
			if (child < 0) { /* MAX_PROCS stands for RLIMIT_NPROC */
				r = -EAGAIN;
				break;
			}
			r = send_cmd(o->pid, i, child, &extra);
			if (r == 0)
				slot_pid[child] = extra;
			break;
		}
		case OP_EXIT: {
			pid_t pid = slot_pid[o->pid];
			if (!pid) {
				r = RES_NA;
				break;
			}
			int c[2] = { i, 0 };
			write(cmd_fd[o->pid][1], c, sizeof(c));
			wait_gone(pid);
			slot_pid[o->pid] = 0;
			break;
		}
		default:
			r = slot_pid[o->pid] ? send_cmd(o->pid, i, 0, NULL) : RES_NA;
		}
		/* the write-out a pageout started completes before the next op (the comparison's
		 * model ends writeback after every op: a real disk finishes in microseconds) */
		if (o->kind == OP_PAGEOUT)
			wait_writeback();
		snprintf(tag, sizeof(tag), "%d", i);
		out(tag, "res", "%s", res_name(r, rb));
		for (int s = 0; s < MAX_PROCS; s++)
			if (slot_pid[s])
				observe_slot(tag, s, 0);
		report_vmstat(tag);
	}
	for (int s = 0; s < MAX_PROCS; s++)
		if (slot_pid[s])
			observe_slot("end", s, 1);
	for (int s = 0; s < MAX_PROCS; s++)
		if (slot_pid[s]) {
			kill(slot_pid[s], SIGKILL);
			wait_gone(slot_pid[s]);
		}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (active_swap)
		swapoff(active_swap);
	rmdir(cgroup);
	printf("K:done=1\n");
	return 0;
}
