# By-hand calibration check for the phantom generator (NOT run by the tests; the project never
# depends on Python). Proxy for "a model trained on the procedural phantoms segments the shared
# ones": a per-voxel quadratic discriminant on percentile-normalised FLAIR, T2, T1ce (+ 5 mm box-
# smoothed copies), trained on generated cases and scored (whole-tumour Dice) on the shared
# Colin27-based phantoms. Needs python3-nibabel and python3-scipy (Debian). Usage:
#   node bin/sam2unet.mjs phantom --out test-output/ph/train --cases 8 --seed 100
#   python3 test/unit/phantom/proxy_check.py test-output/ph/train [loo]   # loo: also shared leave-one-out
import nibabel as nib, numpy as np, glob, os, sys
from scipy.ndimage import uniform_filter
def load(d):
    name=os.path.basename(d.rstrip('/'))
    L=lambda s: np.asarray(nib.load(f'{d}/{name}_{s}.nii.gz').dataobj).astype(np.float32)
    seg=L('seg'); feats=[]
    brain=L('t1')>0
    for s in ['flair','t2','t1ce']:
        a=L(s); lo,hi=np.percentile(a[brain],[0.5,99.5]); n=np.clip((a-lo)/(hi-lo),0,1)
        feats+= [n, uniform_filter(n,5)]
    X=np.stack([f[brain] for f in feats],1); y=(seg[brain]>0)
    return X,y
def fit(data):
    X=np.concatenate([d[0] for d in data]); y=np.concatenate([d[1] for d in data])
    rng=np.random.default_rng(0); idx=rng.choice(len(y),min(len(y),2000000),replace=False); X=X[idx]; y=y[idx]
    P=[]
    for c in [0,1]:
        Xc=X[y==c]; mu=Xc.mean(0); C=np.cov(Xc.T)+1e-4*np.eye(X.shape[1]); P.append((mu,np.linalg.inv(C),np.linalg.slogdet(C)[1],np.log(len(Xc)/len(X))))
    return P
def predict(P,X):
    s=[]
    for mu,Ci,ld,lp in P:
        d=X-mu; s.append(-0.5*np.einsum('ij,jk,ik->i',d,Ci,d)-0.5*ld+lp)
    return s[1]>s[0]
def dice(a,b): return 2*(a&b).sum()/(a.sum()+b.sum())
shared=[load(d) for d in sorted(glob.glob('/work/shared/data/phantoms/BraTS20_Training_00?'))]
ours=[load(d) for d in sorted(glob.glob(sys.argv[1]+'/Phantom_*'))]
Po=fit(ours)
print('trained on ours  -> shared WT Dice', [round(dice(predict(Po,X),y),3) for X,y in shared])
print('trained on ours  -> ours   WT Dice', [round(dice(predict(Po,X),y),3) for X,y in ours[:4]])
if len(sys.argv)>2:
  for i in range(4):
    Ps=fit(shared[:i]+shared[i+1:])
    print('leave-one-out shared -> shared', i+1, round(dice(predict(Ps,shared[i][0]),shared[i][1]),3))
names=['flair','flair5','t2','t25','t1ce','t1ce5']
def tails(data,tag):
    X=np.concatenate([d[0] for d in data]); y=np.concatenate([d[1] for d in data]); H=X[~y]
    print(tag,'healthy flair pcts',np.percentile(H[:,0],[10,50,90,95,99]).round(2),'t2 pcts',np.percentile(H[:,2],[10,50,90,95,99]).round(2))
    m=H[:,2]>0.7; print(tag,' t2>0.7 frac %.3f flair %.2f±%.2f t1ce %.2f'%(m.mean(),H[m,0].mean(),H[m,0].std(),H[m,4].mean()))
    m=(H[:,2]>0.4)&(H[:,2]<0.7); print(tag,' t2 0.4-0.7 frac %.3f flair %.2f±%.2f'%(m.mean(),H[m,0].mean(),H[m,0].std()))
    T=X[y]; print(tag,'tumour flair pcts',np.percentile(T[:,0],[5,25,50,75]).round(2),'t2',np.percentile(T[:,2],[5,25,50,75]).round(2))
tails(shared,'shared'); tails(ours,'ours  ')
for X,y in shared:
    p=predict(Po,X); print('FP',int((p&~y).sum()),'FN',int((~p&y).sum()),'TP',int((p&y).sum()))
