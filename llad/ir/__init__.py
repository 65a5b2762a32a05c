"""llad's model of LLVM IR: read, walk, build, print."""
