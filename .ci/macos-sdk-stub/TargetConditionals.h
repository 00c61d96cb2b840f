/* Stand-in for the macOS SDK's TargetConditionals.h, for `.ci/cross`'s macOS check on Linux,
 * where no SDK exists. ring's C reads only these; the build defines RING_CORE_NOSTDLIBINC, so
 * it needs no libc header, and clang supplies stddef.h and stdint.h. Never used on a Mac. */
#ifndef OPKSSH_CI_TARGET_CONDITIONALS_H
#define OPKSSH_CI_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_CPU_ARM64 1
#define TARGET_CPU_X86_64 0
#endif
