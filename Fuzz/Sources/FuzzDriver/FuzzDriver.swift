// Each fuzz executable's main hands control to libFuzzer's driver. SwiftPM links every executable with a `main` of
// its own (the module's top-level code), so the `main` that libFuzzer's runtime brings never runs;
// `LLVMFuzzerRunDriver` is libFuzzer's documented entry point for programs that keep their main.

#if canImport(Glibc)
import Glibc
#endif

/// `LLVMFuzzerTestOneInput`'s type: called once per generated input, returns 0.
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: FuzzCallback
) -> CInt

/// Runs libFuzzer with this process's command line (corpus directories, -max_total_time, ...) on `callback`, then
/// exits with libFuzzer's status.
public func runFuzzer(_ callback: FuzzCallback) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// The input as an array (an empty input may come with a null pointer).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}
