// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "nas",
    products: [
        .executable(name: "nas", targets: ["CLI"]),
        // Shipped constraint plugins: shared libraries that `nas` loads with dlopen.
        .library(name: "nas_latency", type: .dynamic, targets: ["LatencyPlugin"]),
        .library(name: "nas_memory", type: .dynamic, targets: ["MemoryPlugin"]),
        .library(name: "nas_power", type: .dynamic, targets: ["PowerPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // The versioned C ABI of constraint plugins (the header lives in plugins/include).
        .target(name: "CNasPlugin", path: "Sources/CNasPlugin"),
        .target(name: "Constraints"),
        .target(name: "Plugins", dependencies: ["Constraints", "CNasPlugin"]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // The trainer's SIMD convolution kernels (AVX-512, AVX2 + FMA or portable, chosen at run time).
        .target(name: "CTrainerKernels", path: "Sources/CTrainerKernels"),
        .target(name: "Trainer", dependencies: ["Constraints", "CZlib", "COpenBLAS", "CTrainerKernels"]),
        .target(name: "Fleet", dependencies: ["Constraints", "Trainer", "CCurl"]),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Constraints", "Plugins", "Trainer", "Fleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Plugins shipped with the tool, one per language of the ABI.
        .target(name: "LatencyPlugin", dependencies: ["CNasPlugin"], path: "plugins/c-latency", publicHeadersPath: "."),
        .target(name: "MemoryPlugin", dependencies: ["CNasPlugin"], path: "plugins/c-memory", publicHeadersPath: "."),
        .target(name: "PowerPlugin", dependencies: ["CNasPlugin"], path: "plugins/swift-power"),
        // On-demand benchmark of the trainer (bench/trainer_vs_keras.py drives it); not part of the product.
        .executableTarget(name: "TrainerBench", dependencies: ["Trainer"], path: "bench/TrainerBench"),
        .testTarget(name: "ConstraintsTests", dependencies: ["Constraints"]),
        .testTarget(name: "PluginsTests", dependencies: ["Plugins", "Constraints"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer"]),
        .testTarget(name: "FleetTests", dependencies: ["Fleet"]),
        .testTarget(name: "CLITests", dependencies: ["CLI"]),
    ]
)
