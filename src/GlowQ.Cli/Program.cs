using GlowQ.Cli;
using GlowQ.Cli.Hosting;
using Microsoft.Extensions.Hosting;

IHost host;
try
{
    host = GlowQHost.Build(AppContext.BaseDirectory, Console.Error);
}
catch (Exception e) when (e is ConfigurationProblemException || GlowQHost.DescribeLoadFailure(e) is not null)
{
    Console.Error.WriteLine($"glowq: error: {(e as ConfigurationProblemException)?.Message ?? GlowQHost.DescribeLoadFailure(e)}");
    return GlowQCommandLine.ExitError;
}

using (host)
{
    return GlowQCommandLine.Run(args, Console.Out, Console.Error, stdin: null, host);
}
