// The build's commit for `sluice version --verbose`. build_commit.h is generated (never
// committed): `make` writes `#define SLUICE_BUILD_COMMIT "<git rev-parse --short HEAD>"` into it
// when the commit changes, the Dockerfile from its SLUICE_BUILD_COMMIT build argument. Without
// it (a plain `swift build`, a source tarball) the commit is "unknown".
#include "CHyperscan.h"
#if __has_include("build_commit.h")
#include "build_commit.h"
#endif
#ifndef SLUICE_BUILD_COMMIT
#define SLUICE_BUILD_COMMIT "unknown"
#endif

const char *sluice_build_commit(void) { return SLUICE_BUILD_COMMIT; }
