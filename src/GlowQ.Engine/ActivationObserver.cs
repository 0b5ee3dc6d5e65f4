namespace GlowQ.Engine;

/// <summary>The four places in a decoder layer where a GlowQ unit's shared input can be observed.</summary>
public enum ActivationSite
{
    /// <summary>Attention-norm output: the input of q_proj, k_proj and v_proj.</summary>
    AttentionInput,

    /// <summary>Attention output: the input of o_proj.</summary>
    AttentionOutput,

    /// <summary>Ffn-norm output: the input of gate_proj and up_proj.</summary>
    FfnInput,

    /// <summary>silu(gate)·up: the input of down_proj.</summary>
    DownInput,
}

/// <summary>Receives the inputs of each unit as the forward pass computes them (calibration statistics).</summary>
public interface IActivationObserver
{
    /// <param name="rows">Row-major [tokens × width] activations; valid only during the call.</param>
    void Observe(int layer, ActivationSite site, ReadOnlySpan<float> rows, int tokens);
}
