namespace GlowQ.Runtime.Gpu;

/// <summary>Where the GPU kernels read a model's weights.</summary>
public enum GpuWeightPlacement
{
    /// <summary>Mapped from the file on an integrated GPU (it shares the host's memory), copied to a discrete one.</summary>
    Auto,

    /// <summary>Copied to device memory once at load, each unit's members stacked for the fused kernels.</summary>
    DeviceCopy,

    /// <summary>Read in place from the memory-mapped file: no second copy, one launch per member.</summary>
    MappedFile,
}
