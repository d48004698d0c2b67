#!/bin/bash
# t1301's full-disk checks with the vault on an overlayfs over the small ext4 image: a backing
# filesystem custodyfs does not know to report a full disk at write time, on which it reserves
# a growing file's new space with fallocate before writing it.
T1301_OVERLAY=1 exec bash "$(dirname "$0")/t1301-fault-full-disk.sh"
