import CLinux
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

@Suite("Releasing a held child")
struct ReleaseChildTests {
    @Test("the release byte to a child that died fails with EPIPE: the tool is not killed by SIGPIPE, and its signal mask is as before")
    func childGone() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[1]) }
        // The child's end, closed: as when a held child is killed before it reads the byte.
        close(fds[0])
        var before = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &before)
        let result = jb_release_child(fds[1])
        let code = errno
        #expect(result == -1 && code == EPIPE)
        var after = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &after)
        #expect(sigismember(&after, SIGPIPE) == sigismember(&before, SIGPIPE))
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGPIPE) == 0, "the SIGPIPE the write raised was taken")
    }

    @Test("the release byte reaches a child that waits for it")
    func childWaiting() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        #expect(jb_release_child(fds[1]) == 1)
        var byte: UInt8 = 0
        #expect(read(fds[0], &byte, 1) == 1 && byte == UInt8(ascii: "g"))
    }
}
