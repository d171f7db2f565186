export * from '@relayer/common/file-hasher';
