"""numamap's asv suite: every workload measured for plain numpy and for numamap side by side."""
