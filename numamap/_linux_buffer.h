/* The base type of numamap.View on Linux: the buffer protocol over mapped memory, on every
 * Python that numamap supports (a Python class gains __buffer__ only from 3.12 on).
 * Nothing here keeps global state: each call of nm_buffer_type makes a new type object. */
#ifndef NUMAMAP_LINUX_BUFFER_H
#define NUMAMAP_LINUX_BUFFER_H

#include <stdint.h>

/* cdef begin */
/* A new reference to a new heap type 'MappedBuffer' (a PyObject * as an integer), or 0 with a
 * Python exception set. Its instances export [address, address + length) through the buffer
 * protocol once _nm_set_buffer(address, length, readonly, refuse) has been called; refuse makes
 * them raise BufferError instead (numpy then takes __array_interface__). Takes the GIL. */
uintptr_t nm_buffer_type(void);
/* A new reference to a new heap type 'ArenaBuffer': like MappedBuffer, over one arena block
 * (_arena.h) that it takes with _nm_take(node, kind, nbytes, zero) -> errno and gives back to
 * its arena when it is deallocated. Takes the GIL. */
uintptr_t nm_arena_buffer_type(void);
/* cdef end */

#endif
